// The metrics.jsonl schema and its checks (see metrics_schema.h).
#include "common/metrics_schema.h"

#include <stdexcept>

namespace convoy::metrics {
namespace {

using json = nlohmann::json;
constexpr bool kRequired = true, kOptional = false;

std::vector<Field> report_fields() {
  return {
      {"loss", Type::kNumber, kRequired, "mean cross-entropy over the split", {}},
      {"accuracy", Type::kNumber, kRequired, "top-1 accuracy", {}},
      {"top5", Type::kNumber, kRequired, "top-5 accuracy", {}},
      {"macro_f1", Type::kNumber, kRequired, "F1 averaged over the classes present", {}},
      {"micro_f1", Type::kNumber, kRequired, "F1 over all samples", {}},
      {"samples", Type::kInteger, kRequired, "samples evaluated (segmentation: labelled pixels)", {}},
      {"mean_iou", Type::kNumber, kOptional, "segmentation: mean IoU over the classes present", {}},
      {"mean_dice", Type::kNumber, kOptional, "segmentation: mean dice (= macro_f1) over the classes present", {}},
      {"dice_loss", Type::kNumber, kOptional,
       "segmentation: SMP's soft dice loss over the whole split (its sums reduced, then 1 - dice per class)", {}},
      {"per_class", Type::kObjects, kOptional, "per class, while there are at most 100 classes",
       {{"class", Type::kString, kRequired, "class name", {}},
        {"precision", Type::kNumber, kRequired, "", {}},
        {"recall", Type::kNumber, kRequired, "", {}},
        {"f1", Type::kNumber, kRequired, "", {}},
        {"support", Type::kInteger, kRequired, "samples of the class", {}},
        {"iou", Type::kNumber, kOptional, "segmentation: the class's IoU", {}}}},
      {"confusion", Type::kMatrix, kOptional, "rows: true class, columns: predicted", {}},
  };
}

std::vector<Event> make_schema() {
  std::vector<Field> eval = {
      {"epoch", Type::kInteger, kOptional, "1-based epoch (absent for `convoy eval`)", {}},
      {"split", Type::kString, kRequired, "train, val or test", {}},
      {"checkpoint", Type::kString, kOptional, "`convoy eval`: the checkpoint evaluated", {}},
      {"global_step", Type::kInteger, kOptional, "`convoy eval`: the checkpoint's global step", {}},
      {"seconds", Type::kNumber, kOptional, "`convoy eval`: how long it took", {}},
  };
  for (auto& f : report_fields()) eval.push_back(f);
  return {
      {kStart, "worker (rank 0)", "once per attempt, before the first step",
       {{"world_size", Type::kInteger, kRequired, "ranks", {}},
        {"batch_size", Type::kInteger, kRequired, "per rank", {}},
        {"steps_per_epoch", Type::kInteger, kRequired, "batches per rank per epoch", {}},
        {"epochs", Type::kInteger, kRequired, "", {}},
        {"model", Type::kString, kRequired, "model.arch", {}},
        {"amp", Type::kString, kRequired, "train.amp as resolved: none, bf16 or fp16", {}},
        {"channels_last", Type::kBool, kRequired, "as resolved", {}},
        {"conv_algorithm", Type::kString, kRequired, "as resolved", {}},
        {"parameters", Type::kInteger, kRequired, "", {}},
        {"global_step", Type::kInteger, kRequired, "optimizer steps done before this attempt", {}},
        {"classes", Type::kStrings, kRequired, "class names, by label", {}}}},
      {kResume, "worker (rank 0)", "when an attempt starts from a checkpoint",
       {{"checkpoint", Type::kString, kRequired, "", {}},
        {"epoch", Type::kInteger, kRequired, "1-based epoch it continues", {}},
        {"step", Type::kInteger, kRequired, "global step it continues from", {}}}},
      {kTrain, "worker (rank 0)", "every train.log_every_steps optimizer steps, and at each epoch's end",
       {{"epoch", Type::kInteger, kRequired, "1-based", {}},
        {"step", Type::kInteger, kRequired, "global step after the window", {}},
        {"loss", Type::kNumber, kRequired, "mean over the window and all ranks", {}},
        {"lr", Type::kNumber, kRequired, "", {}},
        {"images_per_sec", Type::kNumber, kRequired, "all ranks together, over the window", {}},
        {"breakdown_ms", Type::kObject, kRequired, "rank 0's mean step time by phase; the phases add up to the step",
         {{"data_wait", Type::kNumber, kRequired, "", {}},
          {"forward", Type::kNumber, kRequired, "", {}},
          {"backward", Type::kNumber, kRequired, "", {}},
          {"exposed_comm", Type::kNumber, kRequired, "all-reduce time not hidden behind backward", {}},
          {"optimizer", Type::kNumber, kRequired, "", {}}}},
        {"allreduce_total_ms", Type::kNumber, kRequired, "all-reduce time, overlapped or not", {}},
        {"data_shards", Type::kObjects, kRequired, "this rank's view of each data-service shard",
         {{"shard", Type::kInteger, kRequired, "", {}},
          {"images_per_sec", Type::kInteger, kRequired, "decode rate while filling", {}},
          {"queued", Type::kInteger, kRequired, "batches waiting in the ring", {}}}},
        {"loss_scale", Type::kNumber, kOptional, "with loss scaling", {}},
        {"skipped_steps", Type::kInteger, kOptional, "with loss scaling: steps skipped for inf/NaN", {}}}},
      {kEval, "worker (rank 0); `convoy eval`", "per evaluated split per epoch", eval},
      {kDataErrors, "worker (rank 0)", "at an epoch's end when corrupt images were skipped",
       {{"epoch", Type::kInteger, kRequired, "", {}},
        {"count", Type::kInteger, kRequired, "all ranks", {}},
        {"examples", Type::kStrings, kRequired, "up to 5 of rank 0's files", {}}}},
      {kDataServiceRestart, "worker (rank 0)", "when a data-service shard was restarted",
       {{"shard", Type::kInteger, kRequired, "", {}},
        {"step", Type::kInteger, kRequired, "global step", {}},
        {"split", Type::kString, kRequired, "", {}},
        {"epoch", Type::kInteger, kRequired, "", {}},
        {"epoch_step", Type::kInteger, kRequired, "", {}},
        {"reason", Type::kString, kRequired, "", {}}}},
      {kDataServiceCrash, "worker (rank 0)",
       "besides data_service_restart, when the shard's process had crashed (SIGSEGV, SIGBUS, SIGABRT, ...)",
       {{"shard", Type::kInteger, kRequired, "", {}},
        {"signal", Type::kString, kRequired, "e.g. SIGSEGV", {}},
        {"step", Type::kInteger, kRequired, "global step", {}},
        {"split", Type::kString, kRequired, "", {}},
        {"epoch", Type::kInteger, kRequired, "", {}},
        {"epoch_step", Type::kInteger, kRequired, "", {}}}},
      {kEarlyStop, "worker (rank 0)", "when early stopping ends the run",
       {{"epoch", Type::kInteger, kRequired, "", {}},
        {"metric", Type::kString, kRequired, "train.best_metric", {}},
        {"best_value", Type::kNumber, kRequired, "", {}},
        {"patience", Type::kInteger, kRequired, "", {}}}},
      {kEnd, "worker (rank 0)", "when the run finishes its epochs",
       {{"seconds", Type::kNumber, kRequired, "this attempt's training time", {}},
        {"best_accuracy", Type::kNumber, kRequired, "best top-1 on the selection split (val when there is one)", {}},
        {"best_split", Type::kString, kRequired, "the selection split, or none", {}},
        {"best_metric", Type::kString, kRequired, "train.best_metric", {}},
        {"best_value", Type::kNumber, kRequired, "its best value (null: never evaluated)", {}},
        {"global_step", Type::kInteger, kRequired, "", {}},
        {"param_checksum", Type::kString, kRequired, "CRC-32 of every parameter's bytes", {}}}},
      {kRestart, "launcher", "before it restarts the job after a failure",
       {{"attempt", Type::kInteger, kRequired, "the attempt about to start (1-based)", {}},
        {"reason", Type::kString, kRequired, "", {}}}},
  };
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kString: return "string";
    case Type::kNumber: return "number";
    case Type::kInteger: return "integer";
    case Type::kBool: return "bool";
    case Type::kStrings: return "strings";
    case Type::kObject: return "object";
    case Type::kObjects: return "objects";
    case Type::kMatrix: return "matrix";
  }
  return "?";
}

bool has_type(const json& v, Type t) {
  switch (t) {
    case Type::kString: return v.is_string();
    case Type::kNumber: return v.is_number() || v.is_null();
    case Type::kInteger: return v.is_number_integer();
    case Type::kBool: return v.is_boolean();
    case Type::kStrings:
      if (!v.is_array()) return false;
      for (const auto& x : v)
        if (!x.is_string()) return false;
      return true;
    case Type::kObject: return v.is_object();
    case Type::kObjects:
      if (!v.is_array()) return false;
      for (const auto& x : v)
        if (!x.is_object()) return false;
      return true;
    case Type::kMatrix:
      if (!v.is_array()) return false;
      for (const auto& row : v) {
        if (!row.is_array()) return false;
        for (const auto& x : row)
          if (!x.is_number()) return false;
      }
      return true;
  }
  return false;
}

// Checks `object`'s members against `fields`; `where` prefixes the message.
std::string check_object(const json& object, const std::vector<Field>& fields, const std::string& where,
                         const char* skip) {
  for (const auto& [key, v] : object.items()) {
    if (skip && key == skip) continue;
    const Field* f = nullptr;
    for (const auto& candidate : fields)
      if (key == candidate.name) f = &candidate;
    if (!f) return where + ": undeclared field '" + key + "'";
    if (!has_type(v, f->type))
      return where + ": field '" + key + "' is not of type " + type_name(f->type) + ": " + v.dump();
    if (!f->members.empty()) {
      if (f->type == Type::kObject) {
        std::string why = check_object(v, f->members, where + "." + key, nullptr);
        if (!why.empty()) return why;
      } else {
        for (const auto& item : v) {
          std::string why = check_object(item, f->members, where + "." + key + "[]", nullptr);
          if (!why.empty()) return why;
        }
      }
    }
  }
  for (const auto& f : fields)
    if (f.required && !object.contains(f.name)) return where + ": missing field '" + f.name + "'";
  return "";
}

json fields_json(const std::vector<Field>& fields) {
  json out = json::array();
  for (const auto& f : fields) {
    json j = {{"name", f.name}, {"type", type_name(f.type)}, {"required", f.required}, {"meaning", f.meaning}};
    if (!f.members.empty()) j["members"] = fields_json(f.members);
    out.push_back(j);
  }
  return out;
}

const Field* declared(const json& e, const char* field) {
  const Event* ev = e.contains("event") && e["event"].is_string() ? find_event(e["event"].get<std::string>()) : nullptr;
  if (ev)
    for (const auto& f : ev->fields)
      if (std::string(f.name) == field) return &f;
  throw std::logic_error(std::string("metrics.jsonl reader asks for '") + field + "', which the schema does not declare for " +
                         (ev ? ev->name : "an unknown event"));
}

}  // namespace

const std::vector<Event>& schema() {
  static const std::vector<Event> events = make_schema();
  return events;
}

const Event* find_event(const std::string& name) {
  for (const auto& e : schema())
    if (name == e.name) return &e;
  return nullptr;
}

std::string check_line(const json& line) {
  if (!line.is_object()) return "not a JSON object";
  if (!line.contains("event") || !line["event"].is_string()) return "no \"event\" string";
  const std::string name = line["event"].get<std::string>();
  const Event* e = find_event(name);
  if (!e) return "unknown event '" + name + "'";
  return check_object(line, e->fields, name, "event");
}

std::string check_text(const std::string& line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "not valid JSON: " + line.substr(0, 80);
  return check_line(j);
}

std::string schema_json() {
  json events = json::array();
  for (const auto& e : schema())
    events.push_back({{"event", e.name}, {"written_by", e.written_by}, {"when", e.when}, {"fields", fields_json(e.fields)}});
  return json({{"metrics.jsonl", events}}).dump(2);
}

double number(const json& e, const char* field, double fallback) {
  declared(e, field);
  auto it = e.find(field);
  return it != e.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string text(const json& e, const char* field, const std::string& fallback) {
  declared(e, field);
  auto it = e.find(field);
  return it != e.end() && it->is_string() ? it->get<std::string>() : fallback;
}

const json& value(const json& e, const char* field) {
  static const json null;
  declared(e, field);
  auto it = e.find(field);
  return it != e.end() ? *it : null;
}

bool is(const json& e, const char* event) {
  auto it = e.find("event");
  return it != e.end() && it->is_string() && it->get<std::string>() == event;
}

}  // namespace convoy::metrics
