// Filesystem helpers: crash-safe writes (temp file, fsync, rename) and paths.
#pragma once

#include <functional>
#include <string>

namespace convoy {

// Writes a file so that readers see either the old or the complete new
// content: data goes to PATH.tmp.<pid>, is fsynced, renamed over PATH, and the
// folder is fsynced. `write` receives a sink to call with chunks.
using ChunkSink = std::function<void(const void* data, size_t size)>;
void write_file_atomic(const std::string& path, const std::function<void(const ChunkSink&)>& write);
void write_file_atomic(const std::string& path, const std::string& content);

std::string read_file(const std::string& path);  // throws UserError naming the path
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
void make_dirs(const std::string& path);  // mkdir -p
std::string dirname_of(const std::string& path);
std::string basename_of(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);
std::string absolute_path(const std::string& path);  // against the working folder; not normalised

}  // namespace convoy
