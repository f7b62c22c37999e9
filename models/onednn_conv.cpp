// The oneDNN half of conv.h: 3x3 convolutions as oneDNN's Winograd
// F(4x4, 3x3) kernels, forward and backward, through the oneDNN 2.x that
// LibTorch itself links (CMake checks; see CONVOY_WITH_ONEDNN).
//
// Winograd wants its tensors in oneDNN's blocked layout (nChw16c), which
// ATen cannot hold, so each call reorders x, w and the gradients between the
// tensors' own strides and byte buffers in that layout. The forward's
// blocked input and weights are kept for the backward; one plan (the three
// primitives) is built per shape, once, and kept for the process.
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "models/conv.h"

namespace convoy::onednn {
namespace {

using dnnl::memory;
using Dims = memory::dims;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

// The three primitives of one shape, their descriptors chained so that the
// backward passes take the forward's blocked tensors as they are.
struct Plan {
  int64_t n, c, k, h, w;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc data_pd;
  dnnl::convolution_backward_weights::primitive_desc weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data data;
  dnnl::convolution_backward_weights weights;
};

bool is_winograd(const dnnl::primitive_desc& pd) {
  return std::string(pd.impl_info_str()).find("wino") != std::string::npos;
}

std::unique_ptr<Plan> make_plan(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w) {
  const auto f32 = memory::data_type::f32;
  const Dims src{n, c, h, w}, wei{k, c, 3, 3}, dst{n, k, h, w}, stride{1, 1}, pad{1, 1};
  const auto any = memory::format_tag::any;
  const auto wino = dnnl::algorithm::convolution_winograd;
  // The caller passes each execution its scratch memory: two threads may
  // run one primitive at once (the library's own scratchpad would be shared).
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  try {
    auto p = std::make_unique<Plan>();
    p->n = n, p->c = c, p->k = k, p->h = h, p->w = w;
    p->fwd_pd = {{dnnl::prop_kind::forward_training, wino, memory::desc(src, f32, any), memory::desc(wei, f32, any),
                  memory::desc(dst, f32, any), stride, pad, pad},
                 attr, engine()};
    // A kernel that is not a Winograd one (oneDNN falls back to reference
    // code for some shapes) would only be slower than LibTorch's.
    if (!is_winograd(p->fwd_pd)) return nullptr;
    const auto& s = p->fwd_pd.src_desc();
    const auto& wd = p->fwd_pd.weights_desc();
    const auto& d = p->fwd_pd.dst_desc();
    p->data_pd = {{wino, s, wd, d, stride, pad, pad}, attr, engine(), p->fwd_pd};
    p->weights_pd = {{wino, s, memory::desc(wei, f32, any), d, stride, pad, pad}, attr, engine(), p->fwd_pd};
    if (!is_winograd(p->data_pd) || !is_winograd(p->weights_pd) || p->weights_pd.src_desc() != s ||
        p->weights_pd.diff_dst_desc() != d)
      return nullptr;
    p->fwd = dnnl::convolution_forward(p->fwd_pd);
    p->data = dnnl::convolution_backward_data(p->data_pd);
    p->weights = dnnl::convolution_backward_weights(p->weights_pd);
    return p;
  } catch (const dnnl::error&) {
    return nullptr;  // no Winograd kernel for this shape or CPU
  }
}

std::mutex plans_mu;
std::deque<std::unique_ptr<Plan>> plans;  // stable addresses; null: unsupported
std::map<std::array<int64_t, 5>, int64_t> plan_ids;

// The plan's id for this shape (building it the first time), or -1.
int64_t plan_id(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w) {
  std::lock_guard<std::mutex> lock(plans_mu);
  const std::array<int64_t, 5> key{n, c, k, h, w};
  auto it = plan_ids.find(key);
  if (it == plan_ids.end()) {
    plans.push_back(make_plan(n, c, k, h, w));
    it = plan_ids.emplace(key, static_cast<int64_t>(plans.size()) - 1).first;
  }
  return plans[it->second] ? it->second : -1;
}

const Plan& plan(int64_t id) {
  std::lock_guard<std::mutex> lock(plans_mu);
  return *plans[id];
}

// A tensor's own layout (any strides) as a oneDNN descriptor.
memory::desc desc_of(const torch::Tensor& t) {
  return memory::desc(Dims(t.sizes().begin(), t.sizes().end()), memory::data_type::f32,
                      Dims(t.strides().begin(), t.strides().end()));
}

torch::Tensor dense(const torch::Tensor& t) { return t.is_non_overlapping_and_dense() ? t : t.contiguous(); }

// A byte buffer for a tensor in oneDNN's layout `md`, from ATen's allocator.
torch::Tensor buffer(const memory::desc& md) {
  return torch::empty({static_cast<int64_t>((md.get_size() + sizeof(float) - 1) / sizeof(float))}, torch::kFloat);
}

memory mem(const memory::desc& md, const torch::Tensor& buf) { return memory(md, engine(), buf.data_ptr()); }

// Runs `prim` with `args` plus this thread's scratch memory, and waits.
// The scratch buffer only grows: allocating the Winograd kernels' tens of
// megabytes afresh for every call costs page faults each time.
void run(const dnnl::primitive& prim, const dnnl::primitive_desc_base& pd, std::unordered_map<int, memory> args) {
  thread_local torch::Tensor scratch;
  const auto md = pd.scratchpad_desc();
  if (!scratch.defined() || scratch.numel() * sizeof(float) < md.get_size()) scratch = buffer(md);
  args.emplace(DNNL_ARG_SCRATCHPAD, mem(md, scratch));
  prim.execute(stream(), args);
  stream().wait();
}

void reorder(memory from, memory to) {
  dnnl::reorder(from, to).execute(stream(), from, to);
  stream().wait();
}

// `t` (any dense layout) copied into a new buffer in layout `md`.
torch::Tensor blocked(const torch::Tensor& t, const memory::desc& md) {
  auto buf = buffer(md);
  reorder(mem(desc_of(t), t), mem(md, buf));
  return buf;
}

// A buffer in layout `md` copied into `t` (a new tensor, in its own layout).
torch::Tensor unblocked(const torch::Tensor& buf, const memory::desc& md, torch::Tensor t) {
  reorder(mem(md, buf), mem(desc_of(t), t));
  return t;
}

torch::Tensor empty_float(torch::IntArrayRef sizes, torch::MemoryFormat format) {
  return torch::empty(sizes, torch::TensorOptions().dtype(torch::kFloat).memory_format(format));
}

struct WinogradConv : torch::autograd::Function<WinogradConv> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& w_in,
                               int64_t id) {
    const Plan& p = plan(id);
    const auto x = dense(x_in), w = dense(w_in);
    auto src = blocked(x, p.fwd_pd.src_desc());
    auto wei = blocked(w, p.fwd_pd.weights_desc());
    auto dst = buffer(p.fwd_pd.dst_desc());
    run(p.fwd, p.fwd_pd,
        {{DNNL_ARG_SRC, mem(p.fwd_pd.src_desc(), src)},
         {DNNL_ARG_WEIGHTS, mem(p.fwd_pd.weights_desc(), wei)},
         {DNNL_ARG_DST, mem(p.fwd_pd.dst_desc(), dst)}});
    const auto format = x.suggest_memory_format();
    ctx->saved_data["plan"] = id;
    ctx->saved_data["src"] = src;
    ctx->saved_data["weights"] = wei;
    ctx->saved_data["channels_last"] = format == torch::MemoryFormat::ChannelsLast;
    ctx->save_for_backward({w_in});
    return unblocked(dst, p.fwd_pd.dst_desc(), empty_float({p.n, p.k, p.h, p.w}, format));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Plan& p = plan(ctx->saved_data["plan"].toInt());
    const auto format = ctx->saved_data["channels_last"].toBool() ? torch::MemoryFormat::ChannelsLast
                                                                   : torch::MemoryFormat::Contiguous;
    const auto w = ctx->get_saved_variables()[0];
    const auto& ddst_md = p.fwd_pd.dst_desc();
    auto ddst = blocked(dense(grads[0]), ddst_md);
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      auto dsrc = buffer(p.data_pd.diff_src_desc());
      run(p.data, p.data_pd,
          {{DNNL_ARG_DIFF_DST, mem(ddst_md, ddst)},
           {DNNL_ARG_WEIGHTS, mem(p.data_pd.weights_desc(), ctx->saved_data["weights"].toTensor())},
           {DNNL_ARG_DIFF_SRC, mem(p.data_pd.diff_src_desc(), dsrc)}});
      gx = unblocked(dsrc, p.data_pd.diff_src_desc(), empty_float({p.n, p.c, p.h, p.w}, format));
    }
    if (ctx->needs_input_grad(1)) {
      const auto& dw_md = p.weights_pd.diff_weights_desc();
      auto dw = buffer(dw_md);
      run(p.weights, p.weights_pd,
          {{DNNL_ARG_SRC, mem(p.fwd_pd.src_desc(), ctx->saved_data["src"].toTensor())},
           {DNNL_ARG_DIFF_DST, mem(ddst_md, ddst)},
           {DNNL_ARG_DIFF_WEIGHTS, mem(dw_md, dw)}});
      gw = unblocked(dw, dw_md, torch::empty_like(w));  // w's own strides
    }
    return {gx, gw, torch::Tensor()};
  }
};

}  // namespace

bool winograd_available(std::string* why) {
  static const bool ok = plan_id(1, 16, 16, 8, 8) >= 0;
  if (!ok && why) *why = "oneDNN has no Winograd convolution for this CPU: it needs AVX-512";
  return ok;
}

torch::Tensor winograd_conv3x3(const torch::Tensor& x, const torch::Tensor& w) {
  if (!winograd_available()) return {};
  const int64_t id = plan_id(x.size(0), x.size(1), w.size(0), x.size(2), x.size(3));
  if (id < 0) return {};
  return WinogradConv::apply(x, w, id);
}

}  // namespace convoy::onednn
