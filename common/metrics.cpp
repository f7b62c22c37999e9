// metrics.jsonl writer (see metrics.h).
#include "common/metrics.h"

#include <cmath>
#include <cstdint>

#include "common/error.h"
#include "common/metrics_schema.h"

namespace convoy {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void JsonLine::key(const std::string& k) {
  if (!body_.empty()) body_ += ",";
  body_ += "\"" + json_escape(k) + "\":";
}

JsonLine& JsonLine::add(const std::string& k, const std::string& value) {
  key(k);
  body_ += "\"" + json_escape(value) + "\"";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    body_ += "null";
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", value);
    body_ += buf;
  }
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, const std::vector<std::string>& values) {
  key(k);
  body_ += "[";
  for (size_t i = 0; i < values.size(); ++i) body_ += (i ? ",\"" : "\"") + json_escape(values[i]) + "\"";
  body_ += "]";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, const std::vector<std::vector<int64_t>>& rows) {
  key(k);
  body_ += "[";
  for (size_t r = 0; r < rows.size(); ++r) {
    body_ += r ? ",[" : "[";
    for (size_t c = 0; c < rows[r].size(); ++c) body_ += (c ? "," : "") + std::to_string(rows[r][c]);
    body_ += "]";
  }
  body_ += "]";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, const std::vector<double>& values) {
  key(k);
  body_ += "[";
  for (size_t i = 0; i < values.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", values[i]);
    body_ += (i ? "," : "") + std::string(std::isfinite(values[i]) ? buf : "null");
  }
  body_ += "]";
  return *this;
}

JsonLine& JsonLine::add_raw(const std::string& k, const std::string& json) {
  key(k);
  body_ += json;
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, const std::vector<JsonLine>& objects) {
  std::string list = "[";
  for (size_t i = 0; i < objects.size(); ++i) list += (i ? "," : "") + objects[i].str();
  return add_raw(k, list + "]");
}

JsonLine& JsonLine::add(const std::string& k, bool value) {
  key(k);
  body_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::add(const std::string& k, int64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}

MetricsLog::MetricsLog(const std::string& path) {
  if (path.empty()) return;
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) CONVOY_USER_ERROR("cannot write " << path << ": " << detail::errno_text(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const JsonLine& line) {
  if (!file_) return;
  // A line off the schema is a bug in its writer: refuse it, loudly.
  const std::string why = metrics::check_text(line.str());
  CONVOY_CHECK(why.empty(), "metrics.jsonl line off its schema (common/metrics_schema.cpp): " << why);
  std::string s = line.str() + "\n";
  CONVOY_CHECK(std::fwrite(s.data(), 1, s.size(), file_) == s.size(), "writing metrics.jsonl failed");
  std::fflush(file_);
}

}  // namespace convoy
