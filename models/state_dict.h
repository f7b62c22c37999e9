// state_dict files: what PyTorch's model.state_dict() holds (parameters and
// buffers by dotted name), as a file torch.load reads and torch.save writes.
//
// Wire format: torch.save's zip format (data.pkl + one file per storage) of
// a plain dict {name: tensor}, with no TorchScript type tags, so that
// torch.load's safe default (weights_only) reads it. LibTorch's unpickler reads plain dicts only,
// so a Python state_dict (an OrderedDict) must be saved as
// torch.save(dict(model.state_dict()), path); the error says so.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace convoy {

using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// Parameters then buffers, in the model's registration order.
StateDict state_dict(const torch::nn::Module& model);
// Writes `sd` (as CPU fp32/int64 tensors) atomically.
void save_state_dict(const std::string& path, const StateDict& sd);
// The bytes of torch.save(dict) for `dict`, untagged, so that
// torch.load(weights_only=True) (PyTorch >= 2.6's default) accepts them.
std::string torch_save_bytes(const c10::Dict<std::string, torch::Tensor>& dict);
// Throws UserError naming the path when it is not such a file. A DDP-style
// "module." prefix on every name is dropped.
std::map<std::string, torch::Tensor> read_state_dict(const std::string& path);

// Copies `sd` into `model`. Every entry of the model must be present with
// its shape and no entry may be left over, except the head's (names starting
// with `head` + "."): with `new_head`, a head whose shapes differ (another
// class count) keeps its fresh initialisation and is listed in the result.
// Throws UserError listing missing, unexpected and mis-shaped names.
std::vector<std::string> load_state_dict(torch::nn::Module& model, const std::map<std::string, torch::Tensor>& sd,
                                         const std::string& head = "", bool new_head = false);

}  // namespace convoy
