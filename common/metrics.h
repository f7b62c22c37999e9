// metrics.jsonl: one JSON object per line, appended and flushed (by rank 0,
// and by the launcher between attempts). Its events and fields are stated
// in common/metrics_schema.h; MetricsLog::write refuses a line off it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace convoy {

class JsonLine {
 public:
  JsonLine& add(const std::string& key, const std::string& value);
  JsonLine& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonLine& add(const std::string& key, double value);
  JsonLine& add(const std::string& key, int64_t value);
  JsonLine& add(const std::string& key, int value) { return add(key, static_cast<int64_t>(value)); }
  JsonLine& add(const std::string& key, const std::vector<std::string>& values);
  JsonLine& add(const std::string& key, const std::vector<double>& values);
  JsonLine& add(const std::string& key, bool value);
  JsonLine& add(const std::string& key, const std::vector<std::vector<int64_t>>& rows);  // a matrix
  // `json` must already be valid JSON (an object or a list of them).
  JsonLine& add_raw(const std::string& key, const std::string& json);
  JsonLine& add(const std::string& key, const JsonLine& object) { return add_raw(key, object.str()); }
  JsonLine& add(const std::string& key, const std::vector<JsonLine>& objects);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

std::string json_escape(const std::string& s);

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);  // empty path: writes nothing
  ~MetricsLog();
  void write(const JsonLine& line);

 private:
  FILE* file_ = nullptr;
};

}  // namespace convoy
