// Convolutions (models/conv.h): oneDNN's Winograd path against LibTorch's
// direct kernel, forward and both gradients, in both memory formats; where
// it must not be used; and what it does to a whole ResNet-18.
#include <gtest/gtest.h>

#include "common/error.h"
#include "models/autocast.h"
#include "models/conv.h"
#include "models/models.h"

namespace convoy {
namespace {

struct Result {
  torch::Tensor y, gx, gw, gb;
};

// One forward and backward of `conv` on x with a fixed upstream gradient.
Result run(Conv& conv, const torch::Tensor& x0, const torch::Tensor& up) {
  auto x = x0.detach().clone(torch::MemoryFormat::Preserve).requires_grad_(true);
  conv->zero_grad();
  auto y = conv->forward(x);
  (y * up).sum().backward();
  return {y.detach(), x.grad(), conv->weight.grad().clone(),
          conv->bias.defined() ? conv->bias.grad().clone() : torch::Tensor()};
}

// max |a - b| relative to max |b|.
double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

// "auto" runs a Winograd kernel only where one pays here: oneDNN's
// (AVX-512) or Convoy's F(2x2, 3x3) (AVX2-class CPUs).
#define SKIP_WITHOUT_AUTO_WINOGRAD()                                                 \
  do {                                                                              \
    std::string why;                                                                \
    if (!onednn::winograd_available(&why) && !winograd_f2_preferred()) GTEST_SKIP() << why; \
  } while (0)

// `algorithm` against LibTorch's direct kernel, forward and both gradients.
void expect_matches_direct(ConvAlgorithm algorithm) {
  struct Case {
    int n, c, k, h, w;
    bool bias;
  };
  // Sides that are and are not multiples of the 4x4 and 2x2 tiles, a 1x1
  // image, channels in and out of 8-lane steps; C != K.
  for (const Case& s : {Case{4, 32, 48, 9, 13, false}, Case{2, 64, 64, 28, 28, true}, Case{3, 16, 32, 4, 4, false},
                        Case{2, 48, 16, 1, 1, true}, Case{1, 16, 16, 7, 5, false}})
    for (auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
      torch::manual_seed(1);
      Conv wino(s.c, s.k, 3, 1, 1, s.bias), direct(s.c, s.k, 3, 1, 1, s.bias);
      wino->algorithm = algorithm;
      direct->algorithm = ConvAlgorithm::kDirect;
      {
        torch::NoGradGuard no_grad;
        direct->weight.copy_(wino->weight);
        if (s.bias) direct->bias.copy_(wino->bias.uniform_(-1, 1));
        for (Conv* m : {&wino, &direct})
          (*m)->weight.set_data((*m)->weight.contiguous(format));
      }
      auto x = torch::randn({s.n, s.c, s.h, s.w}).contiguous(format);
      auto up = torch::randn({s.n, s.k, s.h, s.w});
      const Result a = run(wino, x, up), b = run(direct, x, up);
      const std::string what = std::to_string(s.c) + "->" + std::to_string(s.k) + " " + std::to_string(s.h) + "x" +
                               std::to_string(s.w) + (format == torch::MemoryFormat::ChannelsLast ? " NHWC" : " NCHW");
      EXPECT_EQ(wino->winograd_calls, 1) << what;
      EXPECT_EQ(direct->winograd_calls, 0) << what;
      // Float32 Winograd rounds differently from the direct sum, within
      // about 1e-6 of the largest value here; a wrong tile, transform or
      // layout is off by order 1.
      EXPECT_LT(rel(a.y, b.y), 1e-5) << what;
      EXPECT_LT(rel(a.gx, b.gx), 1e-5) << what;
      EXPECT_LT(rel(a.gw, b.gw), 1e-5) << what;
      if (s.bias) EXPECT_LT(rel(a.gb, b.gb), 1e-5) << what;
      // Results come back in the input's layout, gradients in the weight's.
      EXPECT_TRUE(a.y.is_contiguous(format)) << what;
      EXPECT_TRUE(a.gx.is_contiguous(format)) << what;
      EXPECT_EQ(a.gw.strides(), wino->weight.strides()) << what;
    }
}

// oneDNN's F(4x4, 3x3), which "auto" uses where oneDNN has it.
TEST(Conv, WinogradMatchesDirectForwardAndBackward) {
  std::string why;
  if (!onednn::winograd_available(&why)) GTEST_SKIP() << why;
  expect_matches_direct(ConvAlgorithm::kAuto);
}

// Convoy's own F(2x2, 3x3) runs on every CPU when asked for.
TEST(Conv, WinogradF2MatchesDirectForwardAndBackward) { expect_matches_direct(ConvAlgorithm::kWinogradF2); }

TEST(Conv, LibTorchRunsWhatWinogradDoesNot) {
  for (auto algorithm : {ConvAlgorithm::kAuto, ConvAlgorithm::kWinogradF2}) {
    torch::manual_seed(2);
    auto x16 = torch::randn({2, 16, 8, 8});
    // Stride 2, a 1x1 kernel, and channels that are not multiples of 16.
    for (Conv conv : {Conv(16, 16, 3, 2, 1, false), Conv(16, 16, 1, 1, 0, false), Conv(16, 24, 3, 1, 1, false)}) {
      conv->algorithm = algorithm;
      conv->forward(x16);
      EXPECT_EQ(conv->winograd_calls, 0);
    }
    Conv narrow(3, 16, 3, 1, 1, false);
    narrow->algorithm = algorithm;
    narrow->forward(torch::randn({2, 3, 8, 8}));
    EXPECT_EQ(narrow->winograd_calls, 0);
    // Under autocast the convolution is LibTorch's bf16 one.
    Conv conv(16, 16, 3, 1, 1, false);
    conv->algorithm = algorithm;
    {
      compat::AutocastGuard autocast(c10::kCPU, true, torch::kBFloat16);
      EXPECT_EQ(conv->forward(x16).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(conv->winograd_calls, 0);
    // A double-precision input.
    conv->to(torch::kDouble);
    conv->forward(x16.to(torch::kDouble));
    EXPECT_EQ(conv->winograd_calls, 0);
  }
}

// A whole ResNet-18 with `algorithm` (kAuto or kWinogradF2).
void expect_resnet18_gradients_as_good_as_direct(ConvAlgorithm algorithm) {
  ModelSpec spec;
  spec.arch = "resnet18";
  auto build = [&](ConvAlgorithm algorithm) {
    spec.conv_algorithm = algorithm;
    torch::manual_seed(3);
    return make_model(spec, {32, 32, 3}, 5);
  };
  auto direct = build(ConvAlgorithm::kDirect), wino = build(algorithm), exact = build(ConvAlgorithm::kDirect);
  exact->to(torch::kDouble);  // the reference: float64 (always LibTorch's kernels)
  auto x = torch::randn({8, 3, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto y = torch::randint(5, {8});
  for (auto& m : {direct, wino, exact}) {
    auto in = m == exact ? x.to(torch::kDouble) : x;
    torch::nn::functional::cross_entropy(m->forward(in), y).backward();
  }
  // Every 3x3, stride-1 convolution with 16k channels ran as Winograd:
  // layer1-4 without their strided first convolutions, 13 of the 20.
  int64_t calls = 0, convs = 0;
  for (auto& mod : wino->modules(false))
    if (auto* c = mod->as<ConvImpl>()) calls += c->winograd_calls, ++convs;
  EXPECT_EQ(convs, 20);
  EXPECT_EQ(calls, 13);
  // Float32 rounding through 18 layers of BatchNorm on a small batch moves
  // gradients by up to ~1e-4 relative either way; Winograd's must stay
  // within a few times direct's distance from the float64 gradients.
  auto dp = direct->named_parameters(), wp = wino->named_parameters(), ep = exact->named_parameters();
  double worst_direct = 0, worst_wino = 0;
  for (const auto& p : ep) {
    const auto g = p.value().grad().to(torch::kFloat);
    worst_direct = std::max(worst_direct, rel(dp[p.key()].grad(), g));
    worst_wino = std::max(worst_wino, rel(wp[p.key()].grad(), g));
  }
  EXPECT_GT(worst_wino, 0.0);
  EXPECT_LT(worst_wino, std::max(1e-4, 4 * worst_direct)) << "direct's worst: " << worst_direct;
  std::printf("worst relative gradient error against float64: direct %.3g, winograd (%s) %.3g\n", worst_direct,
              name_of(algorithm), worst_wino);
}

TEST(Conv, ResNet18GradientsWithWinogradAreAsGoodAsDirect) {
  SKIP_WITHOUT_AUTO_WINOGRAD();
  expect_resnet18_gradients_as_good_as_direct(ConvAlgorithm::kAuto);
}

TEST(Conv, ResNet18GradientsWithWinogradF2AreAsGoodAsDirect) {
  expect_resnet18_gradients_as_good_as_direct(ConvAlgorithm::kWinogradF2);
}

TEST(Conv, ConfigNamesTheAlgorithm) {
  EXPECT_EQ(parse_choice<ConvAlgorithm>("auto", "model.conv_algorithm"), ConvAlgorithm::kAuto);
  EXPECT_EQ(parse_choice<ConvAlgorithm>("direct", "model.conv_algorithm"), ConvAlgorithm::kDirect);
  EXPECT_EQ(parse_choice<ConvAlgorithm>("winograd_f2", "model.conv_algorithm"), ConvAlgorithm::kWinogradF2);
  EXPECT_EQ(name_of(ConvAlgorithm::kWinogradF2), std::string("winograd_f2"));
  try {
    parse_choice<ConvAlgorithm>("winograd", "model.conv_algorithm");
    ADD_FAILURE() << "no error for an unknown algorithm";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "model.conv_algorithm: unknown value 'winograd' (use one of: auto, direct, winograd_f2)");
  }
}

}  // namespace
}  // namespace convoy
