// Datasets of image files: an image folder (root/<class>/*) or a CSV manifest,
// read on demand; decoding is image_decode.h's job.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "common/error.h"
#include "common/files.h"
#include "data_service/dataset.h"
#include "data_service/image_decode.h"

namespace convoy {
namespace {

std::vector<std::string> list_dir(const std::string& dir, bool want_dirs) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) CONVOY_USER_ERROR("cannot list " << dir << ": " << detail::errno_text(errno));
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    if (is_directory(join_path(dir, name)) == want_dirs) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool is_image_name(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  for (const char* ext : {".jpg", ".jpeg", ".png"}) {
    size_t n = std::char_traits<char>::length(ext);
    if (name.size() > n && name.compare(name.size() - n, n, ext) == 0) return true;
  }
  return false;
}

class FileDataset : public Dataset {
 public:
  explicit FileDataset(FileList files) : files_(std::move(files)) {}
  size_t size() const override { return files_.paths.size(); }
  int label(size_t i) const override { return files_.labels[i]; }
  std::string describe(size_t i) const override { return files_.paths[i]; }
  cv::Mat load(size_t i, int channels) const override {
    EncodedImage enc;
    read_encoded(i, &enc);
    return decode_full(enc.data, enc.size, channels, files_.paths[i]);
  }
  bool read_encoded(size_t i, EncodedImage* out) const override {
    const std::string& path = files_.paths[i];
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw DecodeError("cannot read " + path + ": " + detail::errno_text(errno));
    struct stat st;
    bool ok = ::fstat(fd, &st) == 0;
    size_t size = ok ? static_cast<size_t>(st.st_size) : 0, got = 0;
    out->storage.resize(size);
    while (ok && got < size) {
      ssize_t r = ::read(fd, out->storage.data() + got, size - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) ok = false;
      else got += static_cast<size_t>(r);
    }
    int saved = errno;
    ::close(fd);
    if (!ok) throw DecodeError("cannot read " + path + ": " + detail::errno_text(saved));
    out->data = out->storage.data();
    out->size = size;
    return true;
  }

 private:
  FileList files_;
};

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

bool is_int(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit) && s.size() < 10;
}

}  // namespace

FileList list_image_folder(const std::string& root, std::vector<std::string>* classes) {
  if (!is_directory(root)) CONVOY_USER_ERROR("image folder " << root << " does not exist");
  auto dirs = list_dir(root, true);
  if (dirs.empty()) CONVOY_USER_ERROR("image folder " << root << " has no class sub-folders (expected root/<class>/*.jpg)");
  bool discover = classes->empty();
  if (discover) *classes = dirs;
  FileList out;
  for (const auto& cls : dirs) {
    auto it = std::find(classes->begin(), classes->end(), cls);
    if (it == classes->end())
      CONVOY_USER_ERROR("image folder " << root << " has class '" << cls << "' that the training split lacks");
    int label = static_cast<int>(it - classes->begin());
    std::string dir = join_path(root, cls);
    for (const auto& f : list_dir(dir, false))
      if (is_image_name(f)) {
        out.paths.push_back(join_path(dir, f));
        out.labels.push_back(label);
      }
  }
  return out;
}

FileList read_csv_manifest(const std::string& path, std::vector<std::string>* classes, bool add_classes) {
  std::ifstream in(path);
  if (!in) CONVOY_USER_ERROR("cannot read CSV manifest " << path);
  std::string base = dirname_of(path), line;
  std::vector<std::pair<std::string, std::string>> rows;
  std::vector<int> row_lines;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto comma = line.rfind(',');
    if (comma == std::string::npos)
      CONVOY_USER_ERROR(path << ":" << lineno << ": expected 'path,label'");
    std::string p = trim(line.substr(0, comma)), l = trim(line.substr(comma + 1));
    if (rows.empty() && row_lines.empty() && p == "path" && l == "label") {
      row_lines.push_back(0);  // header seen
      continue;
    }
    rows.emplace_back(p, l);
    row_lines.push_back(lineno);
  }
  if (!row_lines.empty() && row_lines[0] == 0) row_lines.erase(row_lines.begin());
  bool numeric = std::all_of(rows.begin(), rows.end(), [](auto& r) { return is_int(r.second); });
  if (add_classes && classes->empty()) {
    if (numeric) {
      int max_label = -1;
      for (auto& r : rows) max_label = std::max(max_label, std::stoi(r.second));
      for (int c = 0; c <= max_label; ++c) classes->push_back(std::to_string(c));
    } else {
      std::map<std::string, int> names;
      for (auto& r : rows) names[r.second] = 0;
      for (auto& [n, _] : names) classes->push_back(n);
    }
  }
  FileList out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& [p, l] = rows[i];
    auto it = std::find(classes->begin(), classes->end(), l);
    if (it == classes->end())
      CONVOY_USER_ERROR(path << ":" << row_lines[i] << ": label '" << l << "' is not a class of the training split");
    out.paths.push_back(p[0] == '/' ? p : join_path(base, p));
    out.labels.push_back(static_cast<int>(it - classes->begin()));
  }
  return out;
}

std::shared_ptr<const Dataset> make_file_dataset(FileList files) {
  return std::make_shared<FileDataset>(std::move(files));
}

}  // namespace convoy
