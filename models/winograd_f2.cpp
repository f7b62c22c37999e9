// Convoy's own Winograd F(2x2, 3x3) convolution (conv.h, namespace
// winograd_f2), forward and backward, for CPUs where oneDNN has no Winograd
// kernel (it has them for AVX-512 only) and LibTorch's direct AVX2 kernels
// are what ResNet-style training spends most of its time in.
//
// Each 2x2 block of outputs ("tile") of one image is computed from the 4x4
// inputs around it (Lavin & Gray, 2016):
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A,    summed over input channels,
//
// which takes 16 multiplications per tile and channel pair instead of 36.
// With the transforms done per tile, the channel sums become 16 independent
// matrix products, one per position p of the 4x4 tile:
//
//   V[p] (tiles x C)  = input tiles, transformed      (input_transform)
//   U[p] (K x C)      = weights, transformed          (weight_transform)
//   M[p] (tiles x K)  = V[p] U[p]^T                   (a batched GEMM: BLAS)
//   y                 = M's tiles, transformed back   (output_transform)
//
// Backward: the input gradient is the same convolution of dy with the
// weights turned 180 degrees and C/K swapped (U's positions reordered, see
// kTurned); the weight gradient is dU[p] = Z[p]^T V[p], with Z = A dy A^T
// per tile, and dw = G^T dU G. V is kept from the forward (4x the input's
// size) rather than recomputed.
//
// Layout: activations NHWC, so that every transform runs along contiguous
// channels (vectorised by the compiler; target_clones adds an AVX2 copy,
// picked at run time, so the binary still runs on any x86-64). Inputs in
// NCHW are converted; results come back in the input's layout, gradients in
// the weight's.
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "models/conv.h"

namespace convoy::winograd_f2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The kernels' helpers (and the lambdas passed to over_lanes) must be
// inlined into each clone to be compiled for its instruction set.
#define CONVOY_INLINE __attribute__((always_inline))
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CONVOY_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CONVOY_VECTOR_CLONES
#endif

constexpr int64_t kGrain = 16;  // tiles per parallel_for task

struct Geometry {
  int64_t n, h, w, th, tw;  // images, height, width, tiles down and across
  int64_t tiles() const { return n * th * tw; }
};

Geometry geometry(const torch::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  return {x.size(0), h, w, (h + 1) / 2, (w + 1) / 2};
}

// The kernels below work on W channels at a time from fixed-size local
// arrays (W = 8: one AVX2 register of floats), which the compiler turns
// into vector instructions; a tail of fewer than 8 channels goes one by one.
constexpr int kLanes = 8;

// Calls f(std::integral_constant<int, W>{}, i) for i = 0, 8, 16, ... with
// W = 8 while 8 channels remain, then with W = 1 for each of the rest.
template <typename F>
CONVOY_INLINE inline void over_lanes(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) f(std::integral_constant<int, kLanes>{}, i);
  for (; i < n; ++i) f(std::integral_constant<int, 1>{}, i);
}

// Where tile t is: its image and its row and column among the tiles.
struct TilePosition {
  int64_t img, ty, tx;
};

TilePosition tile_position(int64_t t, const Geometry& g) {
  return {t / (g.th * g.tw), (t / g.tw) % g.th, t % g.tw};
}

// Pixel (y, x) of image `img` in an NHWC tensor with c channels, or
// `outside` (c zeros to read, or null: nothing to write) outside the image.
template <typename T>
T* pixel_or(T* base, const Geometry& g, int64_t img, int64_t y, int64_t x, int64_t c, T* outside) {
  return (y >= 0 && y < g.h && x >= 0 && x < g.w) ? base + ((img * g.h + y) * g.w + x) * c : outside;
}

// V[p][t][c] = (B^T d B)[p] for the 4x4 input block d of tile t (rows
// 2ty-1 .. 2ty+2, columns 2tx-1 .. 2tx+2, zero outside the image), for
// channels k .. k+W-1. B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <int W>
CONVOY_INLINE inline void input_block(const float* const (&d)[4][4], int64_t k, float* out, int64_t plane) {
  float r[4][4][W];  // B^T d: rows
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < W; ++l) {
      const float d0 = d[0][j][k + l], d1 = d[1][j][k + l], d2 = d[2][j][k + l], d3 = d[3][j][k + l];
      r[0][j][l] = d0 - d2;
      r[1][j][l] = d1 + d2;
      r[2][j][l] = d2 - d1;
      r[3][j][l] = d1 - d3;
    }
  for (int i = 0; i < 4; ++i)  // (B^T d) B: columns
    for (int l = 0; l < W; ++l) {
      out[(4 * i + 0) * plane + k + l] = r[i][0][l] - r[i][2][l];
      out[(4 * i + 1) * plane + k + l] = r[i][1][l] + r[i][2][l];
      out[(4 * i + 2) * plane + k + l] = r[i][2][l] - r[i][1][l];
      out[(4 * i + 3) * plane + k + l] = r[i][1][l] - r[i][3][l];
    }
}

CONVOY_VECTOR_CLONES
void input_tiles(const float* x, float* v, const float* zeros, const Geometry& g, int64_t c, int64_t t0,
                 int64_t t1) {
  const int64_t plane = g.tiles() * c;
  for (int64_t t = t0; t < t1; ++t) {
    const TilePosition at = tile_position(t, g);
    const float* d[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i][j] = pixel_or(x, g, at.img, 2 * at.ty - 1 + i, 2 * at.tx - 1 + j, c, zeros);
    float* out = v + t * c;
    over_lanes(c, [&](auto lanes, int64_t k) CONVOY_INLINE { input_block<lanes.value>(d, k, out, plane); });
  }
}

// y's 2x2 block of tile t = A^T m A, m[p] = M[p][t][:], for channels
// o .. o+W-1 into r[i][j]. A^T = [1 1 1 0; 0 1 -1 -1].
template <int W>
CONVOY_INLINE inline void output_block(const float* in, int64_t o, int64_t plane, float (&r)[2][2][W]) {
  float s[2][4][W];  // A^T m: rows
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < W; ++l) {
      const float m0 = in[(0 + j) * plane + o + l], m1 = in[(4 + j) * plane + o + l];
      const float m2 = in[(8 + j) * plane + o + l], m3 = in[(12 + j) * plane + o + l];
      s[0][j][l] = m0 + m1 + m2;
      s[1][j][l] = m1 - m2 - m3;
    }
  for (int i = 0; i < 2; ++i)  // (A^T m) A: columns
    for (int l = 0; l < W; ++l) {
      r[i][0][l] = s[i][0][l] + s[i][1][l] + s[i][2][l];
      r[i][1][l] = s[i][1][l] - s[i][2][l] - s[i][3][l];
    }
}

CONVOY_VECTOR_CLONES
void output_tiles(const float* m, float* y, const Geometry& g, int64_t k, int64_t t0, int64_t t1) {
  const int64_t plane = g.tiles() * k;
  for (int64_t t = t0; t < t1; ++t) {
    const TilePosition at = tile_position(t, g);
    const float* in = m + t * k;
    // Outputs past an odd edge are computed and dropped (null).
    float* dst[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        dst[i][j] = pixel_or<float>(y, g, at.img, 2 * at.ty + i, 2 * at.tx + j, k, nullptr);
    over_lanes(k, [&](auto lanes, int64_t o) CONVOY_INLINE {
      constexpr int W = lanes.value;
      float r[2][2][W];
      output_block<W>(in, o, plane, r);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
          if (dst[i][j])
            for (int l = 0; l < W; ++l) dst[i][j][o + l] = r[i][j][l];
    });
  }
}

// Z[p][t][:] = (A dy A^T)[p] for the 2x2 block of dy at tile t (zero
// outside the image), channels o .. o+W-1. A = [1 0; 1 1; 1 -1; 0 -1].
template <int W>
CONVOY_INLINE inline void gradient_block(const float* const (&d)[2][2], int64_t o, float* out, int64_t plane) {
  float q[4][2][W];  // A dy: rows
  for (int j = 0; j < 2; ++j)
    for (int l = 0; l < W; ++l) {
      const float d0 = d[0][j][o + l], d1 = d[1][j][o + l];
      q[0][j][l] = d0;
      q[1][j][l] = d0 + d1;
      q[2][j][l] = d0 - d1;
      q[3][j][l] = -d1;
    }
  for (int i = 0; i < 4; ++i)  // (A dy) A^T: columns
    for (int l = 0; l < W; ++l) {
      out[(4 * i + 0) * plane + o + l] = q[i][0][l];
      out[(4 * i + 1) * plane + o + l] = q[i][0][l] + q[i][1][l];
      out[(4 * i + 2) * plane + o + l] = q[i][0][l] - q[i][1][l];
      out[(4 * i + 3) * plane + o + l] = -q[i][1][l];
    }
}

CONVOY_VECTOR_CLONES
void gradient_tiles(const float* dy, float* z, const float* zeros, const Geometry& g, int64_t k, int64_t t0,
                    int64_t t1) {
  const int64_t plane = g.tiles() * k;
  for (int64_t t = t0; t < t1; ++t) {
    const TilePosition at = tile_position(t, g);
    const float* d[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) d[i][j] = pixel_or(dy, g, at.img, 2 * at.ty + i, 2 * at.tx + j, k, zeros);
    float* out = z + t * k;
    over_lanes(k, [&](auto lanes, int64_t o) CONVOY_INLINE { gradient_block<lanes.value>(d, o, out, plane); });
  }
}

// An NHWC activation (N, C, H, W) -> (16, tiles, C) through `kernel`
// (input_tiles: V; gradient_tiles: Z), tiles shared out among threads.
using TileKernel = void (*)(const float*, float*, const float*, const Geometry&, int64_t, int64_t, int64_t);

torch::Tensor tile_transform(const torch::Tensor& nhwc, const Geometry& g, TileKernel kernel) {
  const int64_t c = nhwc.size(1);
  auto out = torch::empty({16, g.tiles(), c}, nhwc.options().memory_format(torch::MemoryFormat::Contiguous));
  const std::vector<float> zeros(static_cast<size_t>(c), 0.f);
  const float* in = nhwc.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, g.tiles(), kGrain, [&](int64_t t0, int64_t t1) { kernel(in, dst, zeros.data(), g, c, t0, t1); });
  return out;
}

torch::Tensor input_transform(const torch::Tensor& x, const Geometry& g) { return tile_transform(x, g, input_tiles); }

torch::Tensor gradient_transform(const torch::Tensor& dy, const Geometry& g) {
  return tile_transform(dy, g, gradient_tiles);
}

// M (16, tiles, K) -> y (N, K, H, W), NHWC in memory.
torch::Tensor output_transform(const torch::Tensor& m, const Geometry& g) {
  const int64_t k = m.size(2);
  auto y = torch::empty({g.n, k, g.h, g.w}, m.options().memory_format(torch::MemoryFormat::ChannelsLast));
  const float* in = m.data_ptr<float>();
  float* out = y.data_ptr<float>();
  at::parallel_for(0, g.tiles(), kGrain, [&](int64_t t0, int64_t t1) { output_tiles(in, out, g, k, t0, t1); });
  return y;
}

torch::Tensor nhwc(const torch::Tensor& t) { return t.contiguous(torch::MemoryFormat::ChannelsLast); }

// U[p][k][c] = (G w[k][c] G^T)[p] for channels c .. c+W-1 of output k; w
// is (K, 3, 3, C) in memory. G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
template <int W>
CONVOY_INLINE inline void weight_block(const float* w, int64_t c, int64_t cs, float* out,
                                                        int64_t plane) {
  float r[4][3][W];  // G g: rows
  for (int j = 0; j < 3; ++j)
    for (int l = 0; l < W; ++l) {
      const float g0 = w[(0 + j) * cs + c + l], g1 = w[(3 + j) * cs + c + l], g2 = w[(6 + j) * cs + c + l];
      r[0][j][l] = g0;
      r[1][j][l] = .5f * (g0 + g1 + g2);
      r[2][j][l] = .5f * (g0 - g1 + g2);
      r[3][j][l] = g2;
    }
  for (int i = 0; i < 4; ++i)  // (G g) G^T: columns
    for (int l = 0; l < W; ++l) {
      out[(4 * i + 0) * plane + c + l] = r[i][0][l];
      out[(4 * i + 1) * plane + c + l] = .5f * (r[i][0][l] + r[i][1][l] + r[i][2][l]);
      out[(4 * i + 2) * plane + c + l] = .5f * (r[i][0][l] - r[i][1][l] + r[i][2][l]);
      out[(4 * i + 3) * plane + c + l] = r[i][2][l];
    }
}

CONVOY_VECTOR_CLONES
void weight_rows(const float* w, float* u, int64_t kk, int64_t c, int64_t k0, int64_t k1) {
  const int64_t plane = kk * c;
  for (int64_t k = k0; k < k1; ++k) {
    const float* wk = w + k * 9 * c;
    float* out = u + k * c;
    over_lanes(c, [&](auto lanes, int64_t i) CONVOY_INLINE { weight_block<lanes.value>(wk, i, c, out, plane); });
  }
}

// dw[k][c] = G^T D G, D[p] = dU[p][k][c], into dw (K, 3, 3, C) in memory,
// channels c .. c+W-1. G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1].
template <int W>
CONVOY_INLINE inline void weight_gradient_block(const float* du, int64_t c, int64_t plane,
                                                                 float* dw, int64_t cs) {
  float r[3][4][W];  // G^T D: rows
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < W; ++l) {
      const float d0 = du[(0 + j) * plane + c + l], d1 = du[(4 + j) * plane + c + l];
      const float d2 = du[(8 + j) * plane + c + l], d3 = du[(12 + j) * plane + c + l];
      r[0][j][l] = d0 + .5f * (d1 + d2);
      r[1][j][l] = .5f * (d1 - d2);
      r[2][j][l] = .5f * (d1 + d2) + d3;
    }
  for (int i = 0; i < 3; ++i)  // (G^T D) G: columns
    for (int l = 0; l < W; ++l) {
      dw[(3 * i + 0) * cs + c + l] = r[i][0][l] + .5f * (r[i][1][l] + r[i][2][l]);
      dw[(3 * i + 1) * cs + c + l] = .5f * (r[i][1][l] - r[i][2][l]);
      dw[(3 * i + 2) * cs + c + l] = .5f * (r[i][1][l] + r[i][2][l]) + r[i][3][l];
    }
}

CONVOY_VECTOR_CLONES
void weight_gradient_rows(const float* du, float* dw, int64_t kk, int64_t c, int64_t k0, int64_t k1) {
  const int64_t plane = kk * c;
  for (int64_t k = k0; k < k1; ++k) {
    const float* in = du + k * c;
    float* out = dw + k * 9 * c;
    over_lanes(c, [&](auto lanes, int64_t i) CONVOY_INLINE {
      weight_gradient_block<lanes.value>(in, i, plane, out, c);
    });
  }
}

// w (K, C, 3, 3) -> U (16, K, C).
torch::Tensor weight_transform(const torch::Tensor& w_any) {
  const auto w = nhwc(w_any);  // (K, 3, 3, C) in memory
  const int64_t k = w.size(0), c = w.size(1);
  auto u = torch::empty({16, k, c}, w.options().memory_format(torch::MemoryFormat::Contiguous));
  const float* in = w.data_ptr<float>();
  float* out = u.data_ptr<float>();
  at::parallel_for(0, k, 16, [&](int64_t k0, int64_t k1) { weight_rows(in, out, k, c, k0, k1); });
  return u;
}

// dU (16, K, C) -> dw (K, C, 3, 3), channels_last in memory: the adjoint of
// weight_transform.
torch::Tensor weight_gradient(const torch::Tensor& du) {
  const int64_t k = du.size(1), c = du.size(2);
  auto dw = torch::empty({k, c, 3, 3}, du.options().memory_format(torch::MemoryFormat::ChannelsLast));
  const float* in = du.data_ptr<float>();
  float* out = dw.data_ptr<float>();
  at::parallel_for(0, k, 16, [&](int64_t k0, int64_t k1) { weight_gradient_rows(in, out, k, c, k0, k1); });
  return dw;
}

// G w G^T for w turned 180 degrees is U with rows and columns 0 and 3 of
// each 4x4 swapped (G's first and last rows are each other's mirror, the
// middle two their own): the input gradient's transformed weights are U's
// positions in this order, read as (K, C) matrices.
const std::array<int64_t, 16> kTurned = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};

// conv2d(x, w, padding 1) for x NHWC in memory, from U = weight_transform(w)
// as M[p] = V[p] U[p]^T; y NHWC. Keeps V in *v_out when asked.
torch::Tensor forward_nhwc(const torch::Tensor& x, const torch::Tensor& u, torch::Tensor* v_out) {
  const Geometry g = geometry(x);
  auto v = input_transform(x, g);
  auto y = output_transform(torch::bmm(v, u.transpose(1, 2)), g);
  if (v_out) *v_out = std::move(v);
  return y;
}

struct F2Conv : torch::autograd::Function<F2Conv> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w) {
    torch::Tensor v;
    auto y = forward_nhwc(nhwc(x), weight_transform(w), &v);
    ctx->saved_data["v"] = v;
    ctx->saved_data["channels_last"] = x.suggest_memory_format() == torch::MemoryFormat::ChannelsLast;
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["w"] = x.size(3);
    ctx->save_for_backward({w});
    return ctx->saved_data["channels_last"].toBool() ? y : y.contiguous();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto w = ctx->get_saved_variables()[0];
    const auto dy = nhwc(grads[0]);
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      // dx = conv2d(dy, w turned 180 degrees with C and K swapped, padding 1):
      // Mx[p] = Vy[p] U[turned p], (tiles x K)(K x C).
      const Geometry g = geometry(dy);
      const auto u = weight_transform(w);
      const auto turned = torch::tensor(std::vector<int64_t>(kTurned.begin(), kTurned.end()));
      gx = output_transform(torch::bmm(input_transform(dy, g), u.index_select(0, turned)), g);
      if (!ctx->saved_data["channels_last"].toBool()) gx = gx.contiguous();
    }
    if (ctx->needs_input_grad(1)) {
      const auto v = ctx->saved_data["v"].toTensor();
      const auto z = gradient_transform(dy, geometry(dy));
      // dU[p] = Z[p]^T V[p], (K x tiles)(tiles x C).
      gw = torch::empty_like(w).copy_(weight_gradient(torch::bmm(z.transpose(1, 2), v)));  // w's own strides
    }
    return {gx, gw};
  }
};

}  // namespace

torch::Tensor conv3x3(const torch::Tensor& x, const torch::Tensor& w) {
  if (x.dim() != 4 || w.dim() != 4 || w.size(2) != 3 || w.size(3) != 3 || x.size(1) != w.size(1) || !x.is_cpu() ||
      x.scalar_type() != torch::kFloat || w.scalar_type() != torch::kFloat)
    return {};
  return F2Conv::apply(x, w);
}

}  // namespace convoy::winograd_f2
