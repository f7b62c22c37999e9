// torchvision's VisionTransformer with its parameter names: conv_proj,
// class_token, encoder.pos_embedding, encoder.layers.encoder_layer_<i>.{ln_1,
// self_attention.{in_proj_weight,in_proj_bias,out_proj}, ln_2, mlp.{0,3}},
// encoder.ln, heads.head. Adds DeiT's stochastic depth (model.drop_path,
// off by default; torchvision has none). Images need not be square; each
// side must be a multiple of the patch.
#include <cmath>

#include "common/error.h"
#include "models/models.h"

namespace convoy {
namespace {

namespace nn = torch::nn;

nn::LayerNorm layer_norm(int dim) { return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)); }

// Drops a residual branch for whole samples with probability p (training).
torch::Tensor drop_path(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  auto keep = torch::empty({x.size(0), 1, 1}, x.options()).bernoulli_(1 - p);
  return x * keep / (1 - p);
}

// nn.MultiheadAttention(batch_first=True) as ViT calls it: self-attention,
// no masks, the attention weights not returned.
struct SelfAttentionImpl : nn::Module {
  SelfAttentionImpl(int dim, int heads, double dropout)
      : heads_(heads), dropout_(dropout), out_proj(dim, dim) {
    in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
    in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
    register_module("out_proj", out_proj);
    torch::NoGradGuard no_grad;
    nn::init::xavier_uniform_(in_proj_weight);
    nn::init::zeros_(out_proj->bias);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t n = x.size(0), len = x.size(1), dim = x.size(2), hd = dim / heads_;
    auto qkv = torch::nn::functional::linear(x, in_proj_weight, in_proj_bias)
                   .view({n, len, 3, heads_, hd})
                   .permute({2, 0, 3, 1, 4});  // (3, n, heads, len, hd)
    auto q = qkv[0] / std::sqrt(static_cast<double>(hd)), k = qkv[1], v = qkv[2];
    auto attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)), -1);
    if (dropout_ > 0) attn = torch::dropout(attn, dropout_, is_training());
    auto out = torch::matmul(attn, v).transpose(1, 2).reshape({n, len, dim});
    return out_proj->forward(out);
  }
  int64_t heads_;
  double dropout_;
  torch::Tensor in_proj_weight, in_proj_bias;
  nn::Linear out_proj;
};
TORCH_MODULE(SelfAttention);

struct EncoderBlockImpl : nn::Module {
  EncoderBlockImpl(const VitShape& s, double dropout, double attention_dropout, double drop_path)
      : ln_1(layer_norm(s.hidden)), self_attention(s.hidden, s.heads, attention_dropout), dropout(dropout),
        ln_2(layer_norm(s.hidden)), drop_path_(drop_path) {
    register_module("ln_1", ln_1);
    register_module("self_attention", self_attention);
    register_module("dropout", this->dropout);
    register_module("ln_2", ln_2);
    // torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout.
    mlp->push_back(nn::Linear(s.hidden, s.mlp));
    mlp->push_back(nn::GELU());
    mlp->push_back(nn::Dropout(dropout));
    mlp->push_back(nn::Linear(s.mlp, s.hidden));
    mlp->push_back(nn::Dropout(dropout));
    register_module("mlp", mlp);
    torch::NoGradGuard no_grad;
    for (auto& mod : mlp->modules(false))
      if (auto* fc = mod->as<nn::Linear>()) {
        nn::init::xavier_uniform_(fc->weight);
        nn::init::normal_(fc->bias, 0, 1e-6);
      }
  }
  torch::Tensor forward(const torch::Tensor& input) {
    auto x = this->dropout->forward(self_attention->forward(ln_1->forward(input)));
    x = input + drop_path(x, drop_path_, is_training());
    return x + drop_path(mlp->forward(ln_2->forward(x)), drop_path_, is_training());
  }
  nn::LayerNorm ln_1;
  SelfAttention self_attention;
  nn::Dropout dropout;
  nn::LayerNorm ln_2;
  nn::Sequential mlp;
  double drop_path_;
};
TORCH_MODULE(EncoderBlock);

// Holds the blocks under torchvision's names (encoder_layer_0, ...).
struct LayersImpl : nn::Module {
  std::vector<EncoderBlock> blocks;
};
TORCH_MODULE(Layers);

struct EncoderImpl : nn::Module {
  EncoderImpl(const VitShape& s, int64_t seq_len, const ModelSpec& spec)
      : dropout(std::max(0.f, spec.dropout)), ln(layer_norm(s.hidden)) {
    pos_embedding = register_parameter("pos_embedding", torch::empty({1, seq_len, s.hidden}).normal_(0, 0.02));
    register_module("dropout", dropout);
    for (int i = 0; i < s.layers; ++i) {
      // Stochastic depth grows linearly to model.drop_path at the last block.
      const double dp = s.layers > 1 ? spec.drop_path * i / (s.layers - 1) : spec.drop_path;
      layers->blocks.push_back(layers->register_module(
          "encoder_layer_" + std::to_string(i),
          EncoderBlock(s, std::max(0.f, spec.dropout), spec.attention_dropout, dp)));
    }
    register_module("layers", layers);
    register_module("ln", ln);
  }
  torch::Tensor forward(torch::Tensor x) {
    x = dropout->forward(x + pos_embedding);
    for (auto& b : layers->blocks) x = b->forward(x);
    return ln->forward(x);
  }
  torch::Tensor pos_embedding;
  nn::Dropout dropout;
  Layers layers;
  nn::LayerNorm ln;
};
TORCH_MODULE(Encoder);

struct HeadsImpl : nn::Module {
  HeadsImpl(int hidden, int classes) : head(hidden, classes) { register_module("head", head); }
  nn::Linear head;
};
TORCH_MODULE(Heads);

struct VitImpl : ClassifierImpl {
  VitImpl(const VitShape& s, int patch, const ModelSpec& spec, const ImageSpec& image, int classes)
      : hidden_(s.hidden),
        conv_proj(nn::Conv2dOptions(image.channels, s.hidden, patch).stride(patch)),
        encoder(s, static_cast<int64_t>(image.height / patch) * (image.width / patch) + 1, spec),
        heads(s.hidden, classes) {
    if (image.height % patch || image.width % patch)
      CONVOY_USER_ERROR("model.arch " << spec.arch << ": the image (" << image.height << "x" << image.width
                                      << ") must be a multiple of the patch size " << patch << " on each side");
    register_module("conv_proj", conv_proj);
    class_token = register_parameter("class_token", torch::zeros({1, 1, s.hidden}));
    register_module("encoder", encoder);
    register_module("heads", heads);
    head = "heads.head";
    torch::NoGradGuard no_grad;
    // torchvision: truncated normal (std sqrt(1 / fan_in)) patch projection,
    // a zero head.
    const double std = std::sqrt(1.0 / (image.channels * patch * patch));
    conv_proj->weight.normal_(0, std).clamp_(-2 * std, 2 * std);
    nn::init::zeros_(conv_proj->bias);
    nn::init::zeros_(heads->head->weight);
    nn::init::zeros_(heads->head->bias);
  }
  torch::Tensor forward(torch::Tensor x) override {
    const int64_t n = x.size(0);
    x = conv_proj->forward(x).reshape({n, hidden_, -1}).permute({0, 2, 1});
    x = torch::cat({class_token.expand({n, -1, -1}), x}, 1);
    x = encoder->forward(x);
    return heads->head->forward(x.select(1, 0));
  }
  int64_t hidden_;
  nn::Conv2d conv_proj;
  torch::Tensor class_token;
  Encoder encoder;
  Heads heads;
};

}  // namespace

Classifier make_vit(const VitShape& shape, int patch, const ModelSpec& spec, const ImageSpec& image, int num_classes) {
  return std::make_shared<VitImpl>(shape, patch, spec, image, num_classes);
}

}  // namespace convoy
