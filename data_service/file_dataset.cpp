// Datasets of image files: an image folder (root/<class>/*), a CSV manifest
// or labels from file names, read on demand; decoding is image_decode.h's job.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>

#include "common/error.h"
#include "common/files.h"
#include "common/strings.h"
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

namespace {

// One CSV record: commas separate fields, double quotes quote them ("" is a
// quote inside a quoted field).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += line[++i];
      else if (c == '"') quoted = false;
      else out.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  for (auto& f : out) f = trim(f);
  return out;
}

int column_of(const std::vector<std::string>& header, const std::string& name, const std::string& path,
              const char* field) {
  auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end())
    CONVOY_USER_ERROR(path << ":1: no column '" << name << "' for data.csv." << field << " (the header has: "
                           << [&] {
                                std::string h;
                                for (const auto& c : header) h += (h.empty() ? "" : ",") + c;
                                return h;
                              }() << ")");
  return static_cast<int>(it - header.begin());
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The distinct labels, sorted by name.
void add_sorted_names(const std::vector<std::string>& labels, std::vector<std::string>* classes) {
  std::map<std::string, int> names;
  for (auto& l : labels) names[l] = 0;
  for (auto& [n, _] : names) classes->push_back(n);
}

// Class names for labels seen in a training manifest: integers 0..max, or
// the names sorted.
void discover_classes(const std::vector<std::string>& labels, std::vector<std::string>* classes) {
  if (!std::all_of(labels.begin(), labels.end(), is_int)) return add_sorted_names(labels, classes);
  int max_label = -1;
  for (auto& l : labels) max_label = std::max(max_label, std::stoi(l));
  for (int c = 0; c <= max_label; ++c) classes->push_back(std::to_string(c));
}

}  // namespace

FileList read_csv_manifest(const std::string& path, const CsvLayout& layout, std::vector<std::string>* classes,
                           bool add_classes) {
  std::ifstream in(path);
  if (!in) CONVOY_USER_ERROR("cannot read CSV manifest " << path);
  std::vector<std::vector<std::string>> rows;
  std::vector<int> row_lines;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    rows.push_back(csv_fields(line));
    row_lines.push_back(lineno);
  }
  if (rows.empty()) CONVOY_USER_ERROR("CSV manifest " << path << " has no rows");
  // Columns: named through the header when the layout names any (or the
  // header is the plain `path,label`); else the first and last column.
  const bool named = !layout.path_column.empty() || !layout.label_column.empty() || layout.one_hot;
  const bool plain_header = rows[0].size() == 2 && rows[0][0] == "path" && rows[0][1] == "label";
  std::vector<std::string> header;
  if (named || plain_header) {
    header = rows[0];
    rows.erase(rows.begin());
    row_lines.erase(row_lines.begin());
  }
  int path_col = 0, label_col = -1;
  std::vector<int> class_cols;  // one-hot
  if (named) {
    path_col = column_of(header, layout.path_column.empty() ? "path" : layout.path_column, path, "path_column");
    if (layout.one_hot) {
      for (int c = 0; c < static_cast<int>(header.size()); ++c)
        if (c != path_col) class_cols.push_back(c);
    } else {
      label_col = column_of(header, layout.label_column.empty() ? "label" : layout.label_column, path, "label_column");
    }
  }
  std::vector<std::string> paths, labels;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const size_t need = named ? header.size() : 2;
    if (r.size() != need)
      CONVOY_USER_ERROR(path << ":" << row_lines[i] << ": expected " << need << " columns, found " << r.size()
                             << (named ? "" : " (rows are `path,label`)"));
    paths.push_back(r[path_col]);
    if (!layout.one_hot) {
      labels.push_back(r[label_col < 0 ? 1 : label_col]);
      continue;
    }
    int hot = -1;
    for (int c : class_cols) {
      double v = 0;
      try {
        v = std::stod(r[c]);
      } catch (const std::exception&) {
        CONVOY_USER_ERROR(path << ":" << row_lines[i] << ": column '" << header[c] << "' holds '" << r[c]
                               << "', not 0 or 1");
      }
      if (v == 0) continue;
      if (v != 1 || hot >= 0)
        CONVOY_USER_ERROR(path << ":" << row_lines[i] << ": a one-hot row needs exactly one 1 among the class columns");
      hot = c;
    }
    if (hot < 0) CONVOY_USER_ERROR(path << ":" << row_lines[i] << ": a one-hot row has no class column set to 1");
    labels.push_back(header[hot]);
  }
  if (add_classes && classes->empty()) {
    if (layout.one_hot)
      for (int c : class_cols) classes->push_back(header[c]);
    else
      discover_classes(labels, classes);
  }
  const std::string base = layout.image_dir.empty() ? dirname_of(path) : layout.image_dir;
  FileList out;
  for (size_t i = 0; i < paths.size(); ++i) {
    auto it = std::find(classes->begin(), classes->end(), labels[i]);
    if (it == classes->end())
      CONVOY_USER_ERROR(path << ":" << row_lines[i] << ": label '" << labels[i]
                             << "' is not a class of the training split");
    std::string p = paths[i];
    if (!layout.extension.empty() && !ends_with(p, layout.extension)) p += layout.extension;
    out.paths.push_back(p[0] == '/' ? p : join_path(base, p));
    out.labels.push_back(static_cast<int>(it - classes->begin()));
  }
  return out;
}

std::vector<std::string> list_images(const std::string& root) {
  if (!is_directory(root)) CONVOY_USER_ERROR("image folder " << root << " does not exist");
  std::vector<std::string> out, dirs = {root};
  while (!dirs.empty()) {
    std::string dir = dirs.back();
    dirs.pop_back();
    for (const auto& sub : list_dir(dir, true)) dirs.push_back(join_path(dir, sub));
    for (const auto& f : list_dir(dir, false))
      if (is_image_name(f)) out.push_back(join_path(dir, f));
  }
  std::sort(out.begin(), out.end());
  return out;
}

FileList list_by_file_name(const std::string& root, const std::string& pattern, std::vector<std::string>* classes,
                           bool add_classes) {
  const std::regex re(pattern);
  std::vector<std::string> files, labels, unmatched;
  for (const auto& path : list_images(root)) {
    const std::string f = basename_of(path);
    std::smatch m;
    if (!std::regex_search(f, m, re) || m.size() < 2 || m[1].str().empty()) {
      unmatched.push_back(path);
      continue;
    }
    files.push_back(path);
    labels.push_back(m[1].str());
  }
  if (!unmatched.empty())
    CONVOY_USER_ERROR(unmatched.size() << " file name(s) in " << root << " do not match data.file_names.pattern '"
                                       << pattern << "', e.g. " << unmatched[0]);
  if (add_classes && classes->empty()) add_sorted_names(labels, classes);
  FileList out;  // sorted by path (list_images), whatever the file system's order
  for (size_t i = 0; i < files.size(); ++i) {
    auto it = std::find(classes->begin(), classes->end(), labels[i]);
    if (it == classes->end())
      CONVOY_USER_ERROR(files[i] << ": label '" << labels[i] << "' is not a class of the training split");
    out.paths.push_back(files[i]);
    out.labels.push_back(static_cast<int>(it - classes->begin()));
  }
  return out;
}

std::shared_ptr<const Dataset> make_file_dataset(FileList files) {
  return std::make_shared<FileDataset>(std::move(files));
}

}  // namespace convoy
