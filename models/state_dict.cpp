// state_dict files (see state_dict.h).
#include "models/state_dict.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include "common/error.h"
#include "common/files.h"
#include "models/torch_errors.h"

namespace convoy {

StateDict state_dict(const torch::nn::Module& model) {
  StateDict out;
  for (const auto& p : model.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void save_state_dict(const std::string& path, const StateDict& sd) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, t] : sd) {
    auto cpu = t.detach().to(torch::kCPU).contiguous();
    if (cpu.is_floating_point()) cpu = cpu.to(torch::kFloat);
    dict.insert(name, cpu.clone());  // its own storage: pickling a view would write the whole base
  }
  write_file_atomic(path, torch_save_bytes(dict));
}

// torch::pickle_save, less one thing: it tags the dict with its key and
// value types (a torch.jit._pickle.restore_type_tag global), which
// torch.load(weights_only=True), the default from PyTorch 2.6, refuses.
// The same Pickler without tags writes what Python's torch.save would.
std::string torch_save_bytes(const c10::Dict<std::string, torch::Tensor>& dict) {
  std::vector<char> pickle_data;
  torch::jit::Pickler pickler([&](const char* buf, size_t size) { pickle_data.insert(pickle_data.end(), buf, buf + size); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(dict);
  pickler.stop();
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t len) {
    out.append(static_cast<const char*>(bytes), len);
    return len;
  });
  torch::jit::writeArchiveAndTensors("data", pickle_data.data(), pickle_data.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return out;
}

std::map<std::string, torch::Tensor> read_state_dict(const std::string& path) {
  const std::string text = read_file(path);
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(text.begin(), text.end()));
  } catch (const std::exception& e) {
    CONVOY_USER_ERROR(path << " is not a state_dict Convoy can read (" << error_text(e)
                           << "). Save it from Python as a plain dict: torch.save(dict(model.state_dict()), PATH)");
  }
  if (!value.isGenericDict())
    CONVOY_USER_ERROR(path << " holds a " << value.tagKind()
                           << ", not a dict of tensors; save it with torch.save(dict(model.state_dict()), PATH)");
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : value.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor())
      CONVOY_USER_ERROR(path << ": every entry must map a name to a tensor");
    out[kv.key().toStringRef()] = kv.value().toTensor();
  }
  const std::string prefix = "module.";  // saved from a DistributedDataParallel wrapper
  bool all_prefixed = !out.empty();
  for (const auto& [name, _] : out) all_prefixed = all_prefixed && name.rfind(prefix, 0) == 0;
  if (all_prefixed) {
    std::map<std::string, torch::Tensor> stripped;
    for (auto& [name, t] : out) stripped[name.substr(prefix.size())] = t;
    out.swap(stripped);
  }
  return out;
}

std::vector<std::string> load_state_dict(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& sd,
                                         const std::string& head, bool new_head) {
  auto in_head = [&](const std::string& name) { return !head.empty() && name.rfind(head + ".", 0) == 0; };
  StateDict mine = state_dict(model);
  std::vector<std::string> missing, mis_shaped, reinitialised;
  std::map<std::string, bool> used;
  for (const auto& [name, _] : sd) used[name] = false;
  for (const auto& [name, t] : mine) {
    auto it = sd.find(name);
    if (it == sd.end()) {
      missing.push_back(name);
      continue;
    }
    used[name] = true;
    if (it->second.sizes() != t.sizes()) {
      if (new_head && in_head(name)) reinitialised.push_back(name);
      else mis_shaped.push_back(CONVOY_STR(name << " " << it->second.sizes() << " vs " << t.sizes()));
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, u] : used)
    if (!u) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !mis_shaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 6; ++i) s += (i ? ", " : "") + v[i];
      return v.size() > 6 ? s + CONVOY_STR(", ... (" << v.size() << " in all)") : s;
    };
    std::string why;
    if (!missing.empty()) why += " missing: " + list(missing) + ";";
    if (!unexpected.empty()) why += " unexpected: " + list(unexpected) + ";";
    if (!mis_shaped.empty()) why += " other shapes: " + list(mis_shaped) + ";";
    CONVOY_USER_ERROR("the weights do not fit this model (model.arch and image size must match the file's):" << why);
  }
  // A head that changes shape must change as a whole (weight and bias).
  if (!reinitialised.empty())
    for (const auto& [name, _] : mine)
      if (in_head(name) && std::find(reinitialised.begin(), reinitialised.end(), name) == reinitialised.end())
        reinitialised.push_back(name);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : mine)
    if (std::find(reinitialised.begin(), reinitialised.end(), name) == reinitialised.end())
      t.copy_(sd.at(name));
  return reinitialised;
}

}  // namespace convoy
