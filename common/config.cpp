// Config loading: text-format parsing with line-numbered errors, --set
// overrides, validation, dataset path resolution and conversion to structs.
#include "common/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "proto/config.pb.h"

#ifndef CONVOY_SYSTEM_DATASETS_DIR
#define CONVOY_SYSTEM_DATASETS_DIR "/usr/share/datasets"
#endif

namespace convoy {
namespace {

namespace pb = google::protobuf;

class FirstError : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!has_) {
      has_ = true;
      line_ = line + 1;
      column_ = column + 1;
      message_ = message;
    }
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  bool has() const { return has_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  bool has_ = false;
  int line_ = 0, column_ = 0;
  std::string message_;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

std::string field_list(const pb::Descriptor* d) {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) out += (i ? ", " : "") + d->field(i)->name();
  return out;
}

std::string quote_if_string(const pb::FieldDescriptor* fd, const std::string& v) {
  if (fd->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING) return v;
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) return v;
  return "\"" + pb::CEscape(v) + "\"";
}

// Fields whose absence means "decide for me" (see config.proto): `--set
// FIELD=auto` clears them.
bool auto_when_unset(const pb::FieldDescriptor* fd) {
  return fd->full_name() == "convoy.proto.ModelConfig.channels_last";
}

// Applies one "a.b.c=value" override to `cfg`.
void apply_override(proto::Config* cfg, const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    CONVOY_USER_ERROR("--set " << arg << ": expected path.to.field=value");
  std::string path = arg.substr(0, eq), value = arg.substr(eq + 1);
  auto parts = split(path, '.');
  pb::Message* msg = cfg;
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::Descriptor* d = msg->GetDescriptor();
    const pb::FieldDescriptor* fd = d->FindFieldByName(parts[i]);
    if (!fd)
      CONVOY_USER_ERROR("--set " << arg << ": " << d->name() << " has no field '" << parts[i]
                                 << "' (fields: " << field_list(d) << ")");
    bool last = i + 1 == parts.size();
    if (fd->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last || fd->is_repeated())
        CONVOY_USER_ERROR("--set " << arg << ": '" << parts[i]
                                   << "' is a message; set one of its fields (fields: "
                                   << field_list(fd->message_type()) << ")");
      msg = msg->GetReflection()->MutableMessage(msg, fd);
      continue;
    }
    if (!last)
      CONVOY_USER_ERROR("--set " << arg << ": '" << parts[i] << "' is not a message");
    std::string text;
    if (fd->is_repeated()) {
      msg->GetReflection()->ClearField(msg, fd);
      std::string items;
      std::string inner = value;
      if (inner.size() >= 2 && inner.front() == '[' && inner.back() == ']')
        inner = inner.substr(1, inner.size() - 2);
      if (!inner.empty())
        for (auto& item : split(inner, ','))
          items += (items.empty() ? "" : ", ") + quote_if_string(fd, item);
      text = fd->name() + ": [" + items + "]";
    } else if (value == "auto" && auto_when_unset(fd)) {
      msg->GetReflection()->ClearField(msg, fd);
      continue;
    } else {
      text = fd->name() + ": " + quote_if_string(fd, value);
    }
    pb::TextFormat::Parser parser;
    FirstError errors;
    parser.RecordErrorsTo(&errors);
    if (!parser.MergeFromString(text, msg))
      CONVOY_USER_ERROR("--set " << arg << ": " << errors.message());
  }
}

// Validation errors name the file and line of the offending field when it
// came from the file, or the --set argument that set it.
class Validator {
 public:
  Validator(const proto::Config& cfg, const pb::TextFormat::ParseInfoTree& tree,
            std::string origin, const std::vector<std::string>& overrides)
      : cfg_(cfg), tree_(tree), origin_(std::move(origin)), overrides_(overrides) {}

  void require(bool ok, const std::string& path, const std::string& what) const {
    if (!ok) CONVOY_USER_ERROR(locate(path) << path << ": " << what);
  }

  std::string locate(const std::string& path) const {
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it)
      if (it->rfind(path + "=", 0) == 0) return "--set " + *it + ": ";
    const pb::Descriptor* d = cfg_.GetDescriptor();
    const pb::TextFormat::ParseInfoTree* t = &tree_;
    auto parts = split(path, '.');
    for (size_t i = 0; i < parts.size() && t && d; ++i) {
      const pb::FieldDescriptor* fd = d->FindFieldByName(parts[i]);
      if (!fd) break;
      if (i + 1 == parts.size()) {
        auto loc = t->GetLocation(fd, fd->is_repeated() ? 0 : -1);
        if (loc.line >= 0) return origin_ + ":" + std::to_string(loc.line + 1) + ": ";
        break;
      }
      t = t->GetTreeForNested(fd, -1);
      d = fd->message_type();
    }
    return origin_ + ": ";
  }

 private:
  const proto::Config& cfg_;
  const pb::TextFormat::ParseInfoTree& tree_;
  std::string origin_;
  const std::vector<std::string>& overrides_;
};

// Mirrors models/models.cpp's names (common cannot link models/).
bool known_arch(const std::string& a) {
  static const std::regex archs(
      "cnn|mlp|unet|resnet(18|34|50)|vgg(11|16|19)(_bn)?|vit_(ti|s|b)_[1-9][0-9]{0,2}");
  return std::regex_match(a, archs);
}

bool valid_label_pattern(const std::string& pattern, std::string* why) {
  try {
    std::regex re(pattern);
    if (re.mark_count() < 1) {
      *why = "needs a capture group: the label is what the first (...) matches";
      return false;
    }
    return true;
  } catch (const std::regex_error& e) {
    *why = std::string("not a valid regular expression: ") + e.what();
    return false;
  }
}

bool one_of(const std::string& v, std::initializer_list<const char*> options) {
  for (auto o : options)
    if (v == o) return true;
  return false;
}

std::string options_text(std::initializer_list<const char*> options) {
  std::string out;
  for (auto o : options) out += (out.empty() ? "" : ", ") + std::string(o);
  return out;
}

#define REQUIRE_ONE_OF(value, path, ...)                                              \
  v.require(one_of(value, {__VA_ARGS__}), path,                                      \
            "unknown value '" + std::string(value) + "' (use one of: " +             \
                options_text({__VA_ARGS__}) + ")")

// Validated before the specs are filled, so the specs' choice_from_name never
// meets an unknown name.
#define REQUIRE_CHOICE(Enum, value, path)                                                \
  v.require(choice_from_name<Enum>(value).has_value(), path,                          \
            "unknown value '" + std::string(value) + "' (use one of: " + choice_list<Enum>() + ")")

void validate_augment(const proto::Augment& a, const Validator& v) {
  v.require(a.rrc_scale_min() > 0 && a.rrc_scale_min() <= a.rrc_scale_max() && a.rrc_scale_max() <= 1,
            "data.train_augment.rrc_scale_min", "need 0 < rrc_scale_min <= rrc_scale_max <= 1");
  v.require(a.rrc_ratio_min() > 0 && a.rrc_ratio_min() <= a.rrc_ratio_max(),
            "data.train_augment.rrc_ratio_min", "need 0 < rrc_ratio_min <= rrc_ratio_max");
  v.require(a.random_crop_padding() >= 0, "data.train_augment.random_crop_padding", "must be >= 0");
  v.require(a.rotate_degrees() >= 0 && a.rotate_degrees() <= 180, "data.train_augment.rotate_degrees",
            "must be in 0..180");
  for (auto [value, name] : {std::pair{a.brightness(), "brightness"}, {a.contrast(), "contrast"},
                             {a.saturation(), "saturation"}})
    v.require(value >= 0 && value < 1, std::string("data.train_augment.") + name, "must be in [0, 1)");
  v.require(a.hue() >= 0 && a.hue() <= 0.5f, "data.train_augment.hue", "must be in [0, 0.5]");
}

}  // namespace

std::optional<std::array<uint8_t, 3>> parse_mask_color(const std::string& text) {
  std::smatch m;
  static const std::regex hex("#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})");
  static const std::regex triple(" *([0-9]{1,3}) *, *([0-9]{1,3}) *, *([0-9]{1,3}) *");
  const bool is_hex = std::regex_match(text, m, hex);
  if (!is_hex && !std::regex_match(text, m, triple)) return std::nullopt;
  std::array<uint8_t, 3> rgb{};
  for (int k = 0; k < 3; ++k) {
    const long v = std::stol(m[k + 1].str(), nullptr, is_hex ? 16 : 10);
    if (v > 255) return std::nullopt;
    rgb[k] = static_cast<uint8_t>(v);
  }
  return rgb;
}

namespace {

void validate_segmentation(const proto::SegmentationFolderDataset& s, const Validator& v) {
  v.require(s.root().empty() != (s.images().empty() && s.masks().empty()), "data.segmentation_folder",
            "set either root (train/, trainannot/, ...) or images and masks, not both");
  v.require(!s.root().empty() || (!s.images().empty() && !s.masks().empty()), "data.segmentation_folder.masks",
            "images and masks go together: set both");
  v.require(s.class_names_size() > 0 || s.mask_values_size() > 0 || s.mask_colors_size() > 0,
            "data.segmentation_folder.class_names",
            "name the classes (or give mask_values or mask_colors): the masks alone do not say how many there are");
  v.require(s.class_names_size() == 0 || s.mask_values_size() == 0 || s.class_names_size() == s.mask_values_size(),
            "data.segmentation_folder.mask_values", "needs one value per class name");
  for (int m : s.mask_values())
    v.require(m >= 0 && m <= 255, "data.segmentation_folder.mask_values", "values are 8-bit mask pixels: 0..255");
  v.require(s.mask_colors_size() == 0 || s.mask_values_size() == 0, "data.segmentation_folder.mask_colors",
            "give mask_values (grey masks) or mask_colors (colour masks), not both");
  v.require(s.class_names_size() == 0 || s.mask_colors_size() == 0 || s.class_names_size() == s.mask_colors_size(),
            "data.segmentation_folder.mask_colors", "needs one colour per class name");
  std::set<std::array<uint8_t, 3>> colours;
  for (const auto& c : s.mask_colors()) {
    const auto rgb = parse_mask_color(c);
    v.require(rgb.has_value(), "data.segmentation_folder.mask_colors",
              "'" + c + "' is no colour: write \"#RRGGBB\" (hex) or \"R,G,B\" (0..255 each)");
    v.require(!rgb || colours.insert(*rgb).second, "data.segmentation_folder.mask_colors",
              "'" + c + "' names a colour twice");
  }
  const int classes = std::max({s.class_names_size(), s.mask_values_size(), s.mask_colors_size()});
  v.require(s.ignore_index() >= classes && s.ignore_index() <= 255, "data.segmentation_folder.ignore_index",
            "must be 0..255 and not a class id (>= the number of classes)");
}

void validate_data(const proto::DataConfig& d, const Validator& v) {
  v.require(d.source_case() != proto::DataConfig::SOURCE_NOT_SET, "data",
            "no dataset: set one of data.idx, data.image_folder, data.csv, data.shards, data.file_names, data.segmentation_folder");
  v.require(d.batch_size() > 0, "data.batch_size", "must be > 0");
  v.require(d.val_fraction() >= 0 && d.val_fraction() < 1, "data.val_fraction", "must be in [0, 1)");
  v.require(d.test_fraction() >= 0 && d.val_fraction() + d.test_fraction() < 1, "data.test_fraction",
            "must be >= 0, with val_fraction + test_fraction < 1");
  if (d.has_file_names()) {
    std::string why;
    v.require(valid_label_pattern(d.file_names().pattern(), &why), "data.file_names.pattern", why);
  }
  v.require(d.image().height() > 0 && d.image().height() <= 8192, "data.image.height", "must be in 1..8192");
  v.require(d.image().width() > 0 && d.image().width() <= 8192, "data.image.width", "must be in 1..8192");
  v.require(d.image().channels() == 1 || d.image().channels() == 3, "data.image.channels", "must be 1 or 3");
  int ch = d.image().channels();
  v.require(d.mean_size() == 0 || d.mean_size() == 1 || d.mean_size() == ch, "data.mean",
            "give 1 value or one per channel");
  v.require(d.std_size() == 0 || d.std_size() == 1 || d.std_size() == ch, "data.std",
            "give 1 value or one per channel");
  for (float s : d.std()) v.require(s > 0, "data.std", "must be > 0");
  validate_augment(d.train_augment(), v);
  if (d.has_segmentation_folder()) validate_segmentation(d.segmentation_folder(), v);
  v.require(d.eval_resize_ratio() == 0 || d.eval_resize_ratio() >= 1, "data.eval_resize_ratio", "must be 0 (auto) or >= 1");
}

void validate_model(const proto::ModelConfig& m, const proto::DataConfig& d, const Validator& v) {
  v.require(known_arch(m.arch()), "model.arch",
            "unknown architecture '" + m.arch() + "' (use one of: cnn, mlp, resnet18, resnet34, resnet50, vgg11, "
            "vgg16, vgg19, vgg11_bn, vgg16_bn, vgg19_bn, vit_ti_16, vit_s_16, vit_b_16; any patch size: vit_b_32; "
            "unet)");
  if (d.has_segmentation_folder() && m.arch() != "unet")
    v.require(false, "model.arch",
              "data.segmentation_folder needs a segmentation model (model.arch: unet), not " + m.arch());
  if (m.arch() == "unet" && !d.has_segmentation_folder())
    v.require(false, "model.arch", "unet labels pixels: it needs a segmentation dataset (data.segmentation_folder)");
  if (m.arch() == "unet") {
    v.require(m.encoder() == "resnet18" || m.encoder() == "resnet34" || m.encoder() == "resnet50", "model.encoder",
              "unknown encoder '" + m.encoder() + "' (use one of: resnet18, resnet34, resnet50)");
    v.require(d.image().height() % 32 == 0 && d.image().width() % 32 == 0, "data.image",
              "a U-Net halves the image five times: height and width must be multiples of 32");
  }
  v.require(m.num_classes() >= 0, "model.num_classes", "must be >= 0");
  v.require(m.width() > 0, "model.width", "must be > 0");
  v.require(m.dropout() == -1 || (m.dropout() >= 0 && m.dropout() < 1), "model.dropout",
            "must be in [0, 1) (or -1: the architecture's default)");
  v.require(m.attention_dropout() >= 0 && m.attention_dropout() < 1, "model.attention_dropout", "must be in [0, 1)");
  v.require(m.drop_path() >= 0 && m.drop_path() < 1, "model.drop_path", "must be in [0, 1)");
  REQUIRE_CHOICE(ConvChoice, m.conv_algorithm(), "model.conv_algorithm");
  v.require(!m.freeze_backbone() || !m.init_from().empty(), "model.freeze_backbone",
            "needs model.init_from (a frozen random backbone learns nothing)");
}

void validate_training(const proto::OptimConfig& o, const proto::TrainConfig& t, const Validator& v) {
  REQUIRE_CHOICE(OptimizerKind, o.optimizer(), "optim.optimizer");
  v.require(o.lr() > 0, "optim.lr", "must be > 0");
  v.require(o.momentum() >= 0 && o.momentum() < 1, "optim.momentum", "must be in [0, 1)");
  v.require(o.weight_decay() >= 0, "optim.weight_decay", "must be >= 0");
  REQUIRE_CHOICE(ScheduleKind, o.schedule(), "optim.schedule");
  v.require(o.warmup_epochs() >= 0, "optim.warmup_epochs", "must be >= 0");
  v.require(o.label_smoothing() >= 0 && o.label_smoothing() < 1, "optim.label_smoothing", "must be in [0, 1)");
  v.require(t.epochs() > 0, "train.epochs", "must be > 0");
  v.require(t.max_steps_per_epoch() >= 0, "train.max_steps_per_epoch", "must be >= 0");
  v.require(t.log_every_steps() > 0, "train.log_every_steps", "must be > 0");
  REQUIRE_CHOICE(Amp, t.amp(), "train.amp");
  REQUIRE_CHOICE(LossScaling, t.loss_scaling(), "train.loss_scaling");
  v.require(t.accumulation_steps() >= 1 && t.accumulation_steps() <= 1024, "train.accumulation_steps",
            "must be in 1..1024");
  v.require(t.threads_per_rank() >= 0, "train.threads_per_rank", "must be >= 0");
  REQUIRE_CHOICE(BestMetric, t.best_metric(), "train.best_metric");
  REQUIRE_CHOICE(LossKind, t.loss(), "train.loss");
  v.require(t.early_stopping_patience() >= 0, "train.early_stopping_patience", "must be >= 0 (0: off)");
  v.require(t.early_stopping_min_delta() >= 0, "train.early_stopping_min_delta", "must be >= 0");
  for (const auto& s : t.eval_splits()) REQUIRE_ONE_OF(s, "train.eval_splits", "train", "val", "test", "none");
  v.require(t.checkpoint_every_steps() >= 0, "train.checkpoint_every_steps", "must be >= 0 (0: epoch ends only)");
  v.require(t.checkpoint_every_minutes() >= 0, "train.checkpoint_every_minutes", "must be >= 0 (0: off)");
  v.require(t.keep_checkpoints() >= 1, "train.keep_checkpoints", "must be >= 1");
  v.require(t.stop_grace_s() > 0, "train.stop_grace_s", "must be > 0");
  v.require(t.timeline_steps() >= 0 && t.timeline_steps() <= 100000, "train.timeline_steps", "must be in 0..100000");
  v.require(t.timeline_start() >= 0, "train.timeline_start", "must be >= 0");
}

// The data service, the process group and logging.
void validate_processes(const proto::Config& c, const Validator& v) {
  const auto& ds = c.data_service();
  v.require(ds.decode_threads() >= 0 && ds.decode_threads() <= 256, "data_service.decode_threads", "must be in 0..256");
  v.require(ds.ring_slots() >= 2 && ds.ring_slots() <= 64, "data_service.ring_slots", "must be in 2..64");
  v.require(ds.timeout_s() > 0, "data_service.timeout_s", "must be > 0");
  v.require(ds.services_per_node() >= 1 && ds.services_per_node() <= 64, "data_service.services_per_node",
            "must be in 1..64");
  v.require(ds.cpu_sets_size() == 0 || ds.cpu_sets_size() == ds.services_per_node(), "data_service.cpu_sets",
            "needs one CPU list per service (services_per_node)");
  v.require(ds.max_restarts() >= 0, "data_service.max_restarts", "must be >= 0");
  v.require(c.distributed().timeout_s() > 0, "distributed.timeout_s", "must be > 0");
  REQUIRE_CHOICE(BufferSync, c.distributed().broadcast_buffers(), "distributed.broadcast_buffers");
  REQUIRE_CHOICE(GradCompression, c.distributed().grad_compression(), "distributed.grad_compression");
  REQUIRE_CHOICE(GradTransport, c.distributed().grad_transport(), "distributed.grad_transport");
  v.require(c.distributed().bucket_mb() > 0 && c.distributed().first_bucket_mb() > 0, "distributed.bucket_mb",
            "bucket sizes must be > 0");
  REQUIRE_ONE_OF(c.log_level(), "log_level", "trace", "debug", "info", "warn", "error", "critical", "off");
}

void validate(const proto::Config& c, const Validator& v) {
  REQUIRE_CHOICE(DeviceKind, c.device(), "device");
  validate_data(c.data(), v);
  validate_model(c.model(), c.data(), v);
  validate_training(c.optim(), c.train(), v);
  validate_processes(c, v);
}


// Resolves a relative dataset path; throws UserError naming where it looked.
std::string resolve_data_path(const std::string& p, const std::string& config_dir,
                              const std::string& field, const Validator& v) {
  if (p.empty()) return p;
  std::vector<std::string> tried;
  if (p[0] == '/') {
    tried.push_back(p);
  } else {
    tried.push_back(join_path(config_dir, p));
    if (absolute_path(p) != tried.back()) tried.push_back(absolute_path(p));
    for (const auto& dir : dataset_search_path()) tried.push_back(join_path(dir, p));
  }
  for (const auto& candidate : tried)
    if (path_exists(candidate)) return candidate;
  std::string looked;
  for (const auto& t : tried) looked += (looked.empty() ? "" : ", ") + t;
  CONVOY_USER_ERROR(v.locate(field) << field << ": dataset path '" << p
                                    << "' does not exist (looked in: " << looked
                                    << "); fix the path or add its folder to CONVOY_DATA_PATH");
}

// Each section of the text format into its struct, field by field by name.
AugmentSpec augment_spec(const proto::Augment& a) {
  AugmentSpec oa;
  oa.random_resized_crop = a.random_resized_crop();
  oa.rrc_scale_min = a.rrc_scale_min();
  oa.rrc_scale_max = a.rrc_scale_max();
  oa.rrc_ratio_min = a.rrc_ratio_min();
  oa.rrc_ratio_max = a.rrc_ratio_max();
  oa.random_crop_padding = a.random_crop_padding();
  oa.horizontal_flip = a.horizontal_flip();
  oa.vertical_flip = a.vertical_flip();
  oa.rotate90 = a.rotate90();
  oa.rotate_degrees = a.rotate_degrees();
  oa.brightness = a.brightness();
  oa.contrast = a.contrast();
  oa.saturation = a.saturation();
  oa.hue = a.hue();
  return oa;
}

// Which dataset, and where: the `source` oneof.
void source_spec(const proto::DataConfig& d, DataSpec* spec) {
  DataSpec& od = *spec;
  switch (d.source_case()) {
    case proto::DataConfig::kIdx:
      od.kind = DataSpec::Kind::kIdx;
      od.idx_dir = d.idx().dir();
      od.class_names.assign(d.idx().class_names().begin(), d.idx().class_names().end());
      break;
    case proto::DataConfig::kImageFolder:
      od.kind = DataSpec::Kind::kImageFolder;
      od.train_path = d.image_folder().root();
      od.val_path = d.image_folder().val_root();
      od.test_path = d.image_folder().test_root();
      break;
    case proto::DataConfig::kShards:
      od.kind = DataSpec::Kind::kShards;
      od.train_path = d.shards().train();
      od.val_path = d.shards().val();
      od.test_path = d.shards().test();
      break;
    case proto::DataConfig::kFileNames:
      od.kind = DataSpec::Kind::kFileNames;
      od.train_path = d.file_names().root();
      od.val_path = d.file_names().val_root();
      od.test_path = d.file_names().test_root();
      od.file_name_pattern = d.file_names().pattern();
      break;
    case proto::DataConfig::kSegmentationFolder: {
      const auto& s = d.segmentation_folder();
      od.kind = DataSpec::Kind::kSegmentationFolder;
      auto& seg = od.segmentation;
      if (!s.root().empty()) {
        od.train_path = join_path(s.root(), "train");
        seg.masks_dir = join_path(s.root(), "trainannot");
        seg.val_images = join_path(s.root(), "val");
        seg.val_masks = join_path(s.root(), "valannot");
        seg.test_images = join_path(s.root(), "test");
        seg.test_masks = join_path(s.root(), "testannot");
      } else {
        od.train_path = s.images();
        seg.masks_dir = s.masks();
      }
      seg.images_dir = od.train_path;
      seg.mask_values.assign(s.mask_values().begin(), s.mask_values().end());
      for (const auto& c : s.mask_colors()) seg.mask_colors.push_back(*parse_mask_color(c));
      seg.ignore_index = s.ignore_index();
      od.class_names.assign(s.class_names().begin(), s.class_names().end());
      if (od.class_names.empty())
        for (size_t c = 0; c < std::max(seg.mask_values.size(), seg.mask_colors.size()); ++c)
          od.class_names.push_back(std::to_string(c));
      break;
    }
    default:
      od.kind = DataSpec::Kind::kCsv;
      od.train_path = d.csv().train();
      od.val_path = d.csv().val();
      od.test_path = d.csv().test();
      od.csv.path_column = d.csv().path_column();
      od.csv.label_column = d.csv().label_column();
      od.csv.one_hot = d.csv().one_hot();
      od.csv.image_dir = d.csv().image_dir();
      od.csv.extension = d.csv().extension();
  }
}

DataSpec data_spec(const proto::DataConfig& d) {
  DataSpec od;
  source_spec(d, &od);
  od.val_fraction = d.val_fraction();
  od.test_fraction = d.test_fraction();
  od.split_seed = d.split_seed();
  od.batch_size = d.batch_size();
  od.drop_last = d.drop_last();
  od.image.height = d.image().height();
  od.image.width = d.image().width();
  od.image.channels = d.image().channels();
  const auto& a = d.train_augment();
  od.train_augment = augment_spec(a);
  // auto: torchvision's classification recipe (resize 256, crop 224) after
  // random-resized-crop; a segmentation set keeps the whole shorter side
  // (a mask's border pixels count as much as its centre's).
  od.eval_resize_ratio = d.eval_resize_ratio() > 0                         ? d.eval_resize_ratio()
                         : a.random_resized_crop() && !d.has_segmentation_folder() ? 256.f / 224.f
                                                                                   : 1.f;
  auto per_channel = [&](const pb::RepeatedField<float>& v) {
    std::vector<float> r(od.image.channels, 0.5f);
    for (int i = 0; i < od.image.channels; ++i)
      if (v.size() > 0) r[i] = v.Get(v.size() == 1 ? 0 : i);
    return r;
  };
  od.mean = per_channel(d.mean());
  od.std = per_channel(d.std());
  od.strict = d.strict();
  return od;
}

ModelSpec model_spec(const proto::ModelConfig& m) {
  ModelSpec om;
  om.arch = m.arch();
  om.num_classes = m.num_classes();
  om.width = m.width();
  om.batch_norm = m.batch_norm();
  om.dropout = m.dropout();
  if (m.has_channels_last()) om.channels_last = m.channels_last();
  om.attention_dropout = m.attention_dropout();
  om.drop_path = m.drop_path();
  om.init_from = m.init_from();
  om.freeze_backbone = m.freeze_backbone();
  om.freeze_batch_norm = m.freeze_batch_norm();
  om.conv_algorithm = *choice_from_name<ConvChoice>(m.conv_algorithm());
  om.encoder = m.encoder();
  return om;
}

OptimSpec optim_spec(const proto::OptimConfig& o) {
  OptimSpec oo;
  oo.optimizer = *choice_from_name<OptimizerKind>(o.optimizer());
  oo.lr = o.lr();
  oo.momentum = o.momentum();
  oo.nesterov = o.nesterov();
  oo.weight_decay = o.weight_decay();
  oo.beta1 = o.beta1();
  oo.beta2 = o.beta2();
  oo.eps = o.eps();
  oo.schedule = *choice_from_name<ScheduleKind>(o.schedule());
  oo.warmup_epochs = o.warmup_epochs();
  oo.step_epochs.assign(o.step_epochs().begin(), o.step_epochs().end());
  oo.step_gamma = o.step_gamma();
  oo.min_lr = o.min_lr();
  oo.label_smoothing = o.label_smoothing();
  return oo;
}

TrainSpec train_spec(const proto::TrainConfig& t) {
  TrainSpec ot;
  ot.epochs = t.epochs();
  ot.max_steps_per_epoch = t.max_steps_per_epoch();
  ot.log_every_steps = t.log_every_steps();
  ot.amp = *choice_from_name<Amp>(t.amp());
  ot.threads_per_rank = t.threads_per_rank();
  ot.eval_splits.assign(t.eval_splits().begin(), t.eval_splits().end());
  ot.eval_test_each_epoch = t.eval_test_each_epoch();
  ot.checkpoint_every_steps = t.checkpoint_every_steps();
  ot.checkpoint_every_minutes = t.checkpoint_every_minutes();
  ot.keep_checkpoints = t.keep_checkpoints();
  ot.stop_grace_s = t.stop_grace_s();
  ot.timeline_steps = t.timeline_steps();
  ot.timeline_start = t.timeline_start();
  ot.max_steps = t.max_steps();
  ot.loss_scaling = *choice_from_name<LossScaling>(t.loss_scaling());
  ot.accumulation_steps = t.accumulation_steps();
  ot.best_metric = *choice_from_name<BestMetric>(t.best_metric());
  ot.loss = *choice_from_name<LossKind>(t.loss());
  ot.early_stopping_patience = t.early_stopping_patience();
  ot.early_stopping_min_delta = t.early_stopping_min_delta();
  ot.cudnn_benchmark = t.cudnn_benchmark();
  return ot;
}

DataServiceSpec data_service_spec(const proto::DataServiceConfig& ds) {
  DataServiceSpec ods;
  ods.decode_threads = ds.decode_threads();
  ods.ring_slots = ds.ring_slots();
  ods.timeout_s = ds.timeout_s();
  ods.crop_aware_decode = ds.crop_aware_decode();
  ods.fast_idct = ds.fast_idct();
  ods.services_per_node = ds.services_per_node();
  ods.cpu_sets.assign(ds.cpu_sets().begin(), ds.cpu_sets().end());
  ods.pin_services = ds.pin_services();
  ods.max_restarts = ds.max_restarts();
  return ods;
}

DistributedSpec distributed_spec(const proto::DistributedConfig& di) {
  DistributedSpec odi;
  odi.timeout_s = di.timeout_s();
  odi.interface = di.interface();
  odi.overlap_grad_sync = di.overlap_grad_sync();
  odi.bucket_mb = di.bucket_mb();
  odi.first_bucket_mb = di.first_bucket_mb();
  odi.broadcast_buffers = *choice_from_name<BufferSync>(di.broadcast_buffers());
  odi.grad_compression = *choice_from_name<GradCompression>(di.grad_compression());
  odi.grad_transport = *choice_from_name<GradTransport>(di.grad_transport());
  return odi;
}

Config to_struct(const proto::Config& c) {
  Config out;
  out.name = c.name();
  out.device = *choice_from_name<DeviceKind>(c.device());
  out.seed = c.seed();
  out.log_level = c.log_level();
  out.run_root = c.run_root();
  out.data = data_spec(c.data());
  out.model = model_spec(c.model());
  out.optim = optim_spec(c.optim());
  out.train = train_spec(c.train());
  out.data_service = data_service_spec(c.data_service());
  out.distributed = distributed_spec(c.distributed());
  return out;
}

}  // namespace

std::vector<std::string> dataset_search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("CONVOY_DATA_PATH"))
    for (auto& dir : split(env, ':'))
      if (!dir.empty()) dirs.push_back(dir);
  dirs.push_back(CONVOY_SYSTEM_DATASETS_DIR);
  return dirs;
}

Config parse_config(const std::string& text, const std::string& origin,
                    const std::vector<std::string>& overrides, bool resolve_paths) {
  proto::Config cfg;
  pb::TextFormat::ParseInfoTree tree;
  pb::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &cfg)) {
    // Quote the offending line: protobuf's message does not always name the field.
    auto lines = split(text, '\n');
    std::string where;
    if (errors.line() >= 1 && errors.line() <= static_cast<int>(lines.size())) {
      std::string l = lines[errors.line() - 1];
      auto a = l.find_first_not_of(" \t");
      if (a != std::string::npos) where = " in `" + l.substr(a) + "`";
    }
    CONVOY_USER_ERROR(origin << ":" << errors.line() << ":" << errors.column() << ": " << errors.message() << where
                             << " (the schema is proto/config.proto)");
  }
  for (const auto& o : overrides) apply_override(&cfg, o);

  Validator v(cfg, tree, origin, overrides);
  validate(cfg, v);

  std::string config_dir = dirname_of(absolute_path(origin));
  auto* d = cfg.mutable_data();
  auto resolve = [&](std::string* p, const char* field) {
    if (resolve_paths) *p = absolute_path(resolve_data_path(*p, config_dir, field, v));
  };
  switch (d->source_case()) {
    case proto::DataConfig::kIdx:
      v.require(!d->idx().dir().empty(), "data.idx.dir", "must name the folder of the IDX files");
      resolve(d->mutable_idx()->mutable_dir(), "data.idx.dir");
      break;
    case proto::DataConfig::kImageFolder:
      v.require(!d->image_folder().root().empty(), "data.image_folder.root", "must name a folder");
      resolve(d->mutable_image_folder()->mutable_root(), "data.image_folder.root");
      resolve(d->mutable_image_folder()->mutable_val_root(), "data.image_folder.val_root");
      resolve(d->mutable_image_folder()->mutable_test_root(), "data.image_folder.test_root");
      break;
    case proto::DataConfig::kShards:
      v.require(!d->shards().train().empty(), "data.shards.train", "must name a folder made by convoy pack");
      resolve(d->mutable_shards()->mutable_train(), "data.shards.train");
      resolve(d->mutable_shards()->mutable_val(), "data.shards.val");
      resolve(d->mutable_shards()->mutable_test(), "data.shards.test");
      break;
    case proto::DataConfig::kFileNames:
      v.require(!d->file_names().root().empty(), "data.file_names.root", "must name a folder");
      resolve(d->mutable_file_names()->mutable_root(), "data.file_names.root");
      resolve(d->mutable_file_names()->mutable_val_root(), "data.file_names.val_root");
      resolve(d->mutable_file_names()->mutable_test_root(), "data.file_names.test_root");
      break;
    case proto::DataConfig::kSegmentationFolder: {
      auto* s = d->mutable_segmentation_folder();
      resolve(s->mutable_root(), "data.segmentation_folder.root");
      resolve(s->mutable_images(), "data.segmentation_folder.images");
      resolve(s->mutable_masks(), "data.segmentation_folder.masks");
      // root's layout: train/ with trainannot/; val/ and test/ are optional,
      // each with its annotations.
      if (resolve_paths && !s->root().empty())
        for (const char* split : {"train", "val", "test"}) {
          const std::string images = join_path(s->root(), split), masks = images + "annot";
          const bool packed = path_exists(join_path(images, "index.tsv"));  // convoy pack's, masks inside
          if (!packed && (std::string(split) == "train" || path_exists(images)))
            v.require(is_directory(images) && is_directory(masks), "data.segmentation_folder.root",
                      "'" + s->root() + "' needs " + split + "/ and " + split + "annot/ (images and their masks); " +
                          (is_directory(images) ? masks : images) + " does not exist");
        }
      break;
    }
    default:
      v.require(!d->csv().train().empty(), "data.csv.train", "must name a CSV manifest");
      resolve(d->mutable_csv()->mutable_train(), "data.csv.train");
      resolve(d->mutable_csv()->mutable_val(), "data.csv.val");
      resolve(d->mutable_csv()->mutable_test(), "data.csv.test");
      resolve(d->mutable_csv()->mutable_image_dir(), "data.csv.image_dir");
  }
  // A weights file is the user's, not a dataset: relative to the working
  // folder, made absolute so that every process reads the same file.
  if (resolve_paths && !cfg.model().init_from().empty()) {
    cfg.mutable_model()->set_init_from(absolute_path(cfg.model().init_from()));
    v.require(path_exists(cfg.model().init_from()), "model.init_from",
              "file '" + cfg.model().init_from() + "' does not exist");
  }
  if (!cfg.has_name()) {
    std::string base = basename_of(origin);
    auto dot = base.find('.');
    cfg.set_name(dot == std::string::npos ? base : base.substr(0, dot));
  }

  Config out = to_struct(cfg);
  out.source_path = origin;
  pb::TextFormat::PrintToString(cfg, &out.resolved_text);
  return out;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (!path_exists(path)) CONVOY_USER_ERROR("config file " << path << " does not exist");
  return parse_config(read_file(path), path, overrides);
}

void throw_unknown_choice(const std::string& what, const std::string& name, const std::string& options) {
  CONVOY_USER_ERROR(what << ": unknown value '" << name << "' (use one of: " << options << ")");
}

}  // namespace convoy
