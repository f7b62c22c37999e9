// metrics.jsonl, stated once: one JSON object per line, each with "event"
// naming one of the events below and exactly the fields listed for it.
//
// Every writer goes through MetricsLog::write (common/metrics.h), which
// checks each line against this schema and throws on a line that breaks it
// (an unknown event or field, a missing required field, a wrong type), so
// a writer cannot drift from it unnoticed. Readers in C++ (the run report,
// `convoy bench scaling`) read fields through metrics::number/text/..., which
// refuse a field the schema does not declare for that event; the Python
// tests get the schema from `convoy report --schema` and check every line
// they read. Adding a field means adding it here first.
#pragma once

#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <vector>

namespace convoy::metrics {

// Event names.
inline constexpr char kStart[] = "start";
inline constexpr char kResume[] = "resume";
inline constexpr char kTrain[] = "train";
inline constexpr char kEval[] = "eval";
inline constexpr char kDataErrors[] = "data_errors";
inline constexpr char kDataServiceRestart[] = "data_service_restart";
inline constexpr char kDataServiceCrash[] = "data_service_crash";
inline constexpr char kEarlyStop[] = "early_stop";
inline constexpr char kEnd[] = "end";
inline constexpr char kRestart[] = "restart";

// kNumber: a JSON number, or null for a value that is not finite (NaN).
enum class Type { kString, kNumber, kInteger, kBool, kStrings, kObject, kObjects, kMatrix };

struct Field {
  const char* name;
  Type type;
  bool required;
  const char* meaning;
  std::vector<Field> members;  // kObject / kObjects: the object's fields (empty: any numbers by name)
};

struct Event {
  const char* name;
  const char* written_by;
  const char* when;
  std::vector<Field> fields;  // besides "event"
};

// All events, in the order a run writes them.
const std::vector<Event>& schema();
// The event called `name`, or nullptr.
const Event* find_event(const std::string& name);

// Empty when `line` (one line of metrics.jsonl) follows the schema, else
// what is wrong with it ("train: missing field 'loss'").
std::string check_line(const nlohmann::json& line);
std::string check_text(const std::string& line);

// The schema as JSON (what `convoy report --schema` prints).
std::string schema_json();

// Field readers for C++ readers: `field` must be declared for the event of
// `e` (a std::logic_error otherwise: a reader that drifted from the schema).
// An absent or null field gives `fallback`.
double number(const nlohmann::json& e, const char* field, double fallback = std::numeric_limits<double>::quiet_NaN());
std::string text(const nlohmann::json& e, const char* field, const std::string& fallback = "");
const nlohmann::json& value(const nlohmann::json& e, const char* field);  // null when absent
bool is(const nlohmann::json& e, const char* event);

}  // namespace convoy::metrics
