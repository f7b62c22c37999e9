// Classification metrics (see eval_metrics.h).
#include "worker/eval_metrics.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/error.h"
#include "models/models.h"
#include "worker/seg_loss.h"

namespace convoy {

void EvalSums::add(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& losses) {
  auto valid = labels >= 0;
  auto y = labels.masked_select(valid).to(torch::kCPU);
  if (y.numel() == 0) return;
  auto l = logits.index({valid}).to(torch::kCPU, torch::kFloat);
  loss_sum += losses.masked_select(valid).sum().item<double>();
  count += y.numel();
  auto pred = l.argmax(1);
  correct += pred.eq(y).sum().item<int64_t>();
  const int64_t k = std::min<int64_t>(5, l.size(1));
  top5 += std::get<1>(l.topk(k, 1)).eq(y.unsqueeze(1)).any(1).sum().item<int64_t>();
  CONVOY_CHECK(l.size(1) == classes, "evaluation with " << l.size(1) << " logits for " << classes << " classes");
  auto cells = torch::bincount(y * classes + pred, {}, static_cast<int64_t>(classes) * classes);
  auto c = cells.accessor<int64_t, 1>();
  for (size_t i = 0; i < confusion.size(); ++i) confusion[i] += c[static_cast<int64_t>(i)];
}

void EvalSums::add_pixels(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index,
                          double batch_loss) {
  const bool binary = logits.size(1) == 1;
  CONVOY_CHECK((binary ? 2 : logits.size(1)) == classes,
               "evaluation with " << logits.size(1) << " channels for " << classes << " classes");
  const auto valid = targets.ne(ignore_index);
  auto y = targets.masked_select(valid).to(torch::kCPU);
  if (y.numel() == 0) return;
  const auto pred_map = predicted_classes(logits);
  auto pred = pred_map.masked_select(valid).to(torch::kCPU);
  loss_sum += batch_loss * static_cast<double>(y.numel());
  count += y.numel();
  correct += pred.eq(y).sum().item<int64_t>();
  if (classes <= 5) {
    top5 += y.numel();  // every class is among the top five
  } else {
    auto top = std::get<1>(logits.topk(5, 1));  // (N, 5, H, W)
    top5 += top.eq(targets.unsqueeze(1)).any(1).masked_select(valid).sum().item<int64_t>();
  }
  auto cells = torch::bincount(y * classes + pred, {}, static_cast<int64_t>(classes) * classes);
  auto c = cells.accessor<int64_t, 1>();
  for (size_t i = 0; i < confusion.size(); ++i) confusion[i] += c[static_cast<int64_t>(i)];
  // Soft dice's sums (the loss's own terms, seg_loss.h), in class slots.
  const auto terms = segmentation_loss_terms(logits.to(torch::kFloat), targets, LossKind::kDice, ignore_index);
  const auto parts = torch::stack({terms.intersection, terms.cardinality, terms.target_pixels})
                         .detach()
                         .to(torch::kCPU, torch::kFloat64)
                         .contiguous();  // (3, channels)
  const int64_t channels = parts.size(1), first = binary ? 1 : 0;
  const double* p = parts.data_ptr<double>();
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t ch = 0; ch < channels; ++ch) soft_dice[static_cast<size_t>(k * classes + first + ch)] += p[k * channels + ch];
}

double EvalSums::dice_loss() const {
  // The model's channels: every class for a softmax (each has cardinality
  // wherever a pixel is labelled), class 1 alone for a sigmoid.
  double sum = 0;
  int channels = 0;
  for (int c = 0; c < classes; ++c) {
    const double inter = soft_dice[c], card = soft_dice[classes + c], target = soft_dice[2 * classes + c];
    if (card <= 0) continue;
    ++channels;
    if (target > 0) sum += 1 - 2 * inter / std::max(card, 1e-7);
  }
  return channels ? sum / channels : 0;
}

torch::Tensor EvalSums::pack() const {
  std::vector<double> v = {loss_sum, static_cast<double>(correct), static_cast<double>(top5),
                           static_cast<double>(count)};
  for (int64_t c : confusion) v.push_back(static_cast<double>(c));
  v.insert(v.end(), soft_dice.begin(), soft_dice.end());
  return torch::tensor(v, torch::kFloat64);
}

EvalSums EvalSums::unpack(const torch::Tensor& t, int classes) {
  EvalSums s(classes);
  auto a = t.to(torch::kCPU).contiguous();
  const double* d = a.data_ptr<double>();
  CONVOY_CHECK(a.numel() == 4 + static_cast<int64_t>(s.confusion.size() + s.soft_dice.size()),
               "evaluation sums of the wrong size");
  s.loss_sum = d[0];
  s.correct = static_cast<int64_t>(d[1]);
  s.top5 = static_cast<int64_t>(d[2]);
  s.count = static_cast<int64_t>(d[3]);
  for (size_t i = 0; i < s.confusion.size(); ++i) s.confusion[i] = static_cast<int64_t>(d[4 + i]);
  for (size_t i = 0; i < s.soft_dice.size(); ++i) s.soft_dice[i] = d[4 + s.confusion.size() + i];
  return s;
}

ClassificationReport summarize(const EvalSums& sums, const std::vector<std::string>& class_names) {
  ClassificationReport r;
  const int n = sums.classes;
  r.loss = sums.loss();
  r.top1 = sums.accuracy();
  r.top5 = sums.top5_accuracy();
  r.samples = sums.count;
  r.micro_f1 = r.top1;  // single-label: micro precision = micro recall = accuracy
  r.confusion.assign(n, std::vector<int64_t>(n, 0));
  std::vector<int64_t> predicted(n, 0);
  for (int t = 0; t < n; ++t)
    for (int p = 0; p < n; ++p) {
      r.confusion[t][p] = sums.confusion[static_cast<size_t>(t) * n + p];
      predicted[p] += r.confusion[t][p];
    }
  double f1_sum = 0, iou_sum = 0;
  int present = 0;
  for (int c = 0; c < n; ++c) {
    ClassMetrics m;
    m.name = c < static_cast<int>(class_names.size()) ? class_names[c] : std::to_string(c);
    for (int p = 0; p < n; ++p) m.support += r.confusion[c][p];
    const double tp = static_cast<double>(r.confusion[c][c]);
    m.precision = predicted[c] ? tp / predicted[c] : 0;
    m.recall = m.support ? tp / m.support : 0;
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0;
    const double union_ = static_cast<double>(m.support + predicted[c]) - tp;
    m.iou = union_ > 0 ? tp / union_ : 0;
    if (m.support > 0 || predicted[c] > 0) {
      f1_sum += m.f1;
      iou_sum += m.iou;
      ++present;
    }
    r.per_class.push_back(m);
  }
  r.macro_f1 = present ? f1_sum / present : 0;
  r.mean_iou = present ? iou_sum / present : 0;
  r.dice_loss = sums.dice_loss();
  return r;
}

void add_report_json(JsonLine* line, const ClassificationReport& r, bool details) {
  line->add("loss", r.loss)
      .add("accuracy", r.top1)
      .add("top5", r.top5)
      .add("macro_f1", r.macro_f1)
      .add("micro_f1", r.micro_f1)
      .add("samples", r.samples);
  if (r.pixels) line->add("mean_iou", r.mean_iou).add("mean_dice", r.macro_f1).add("dice_loss", r.dice_loss);
  if (!details) return;
  std::vector<JsonLine> classes;
  for (const auto& m : r.per_class) {
    classes.push_back(JsonLine()
                          .add("class", m.name)
                          .add("precision", m.precision)
                          .add("recall", m.recall)
                          .add("f1", m.f1)
                          .add("support", m.support));
    if (r.pixels) classes.back().add("iou", m.iou);
  }
  line->add("per_class", classes).add("confusion", r.confusion);
}

std::string report_text(const ClassificationReport& r, const std::string& title) {
  size_t w = 5;
  for (const auto& m : r.per_class) w = std::max(w, std::min<size_t>(m.name.size(), 32));
  if (r.pixels) {  // segmentation: IoU and dice per class, over labelled pixels
    // SMP's training script's pair first: dice_loss (soft, over the split)
    // and iou_score (mean IoU).
    std::string out = fmt::format("{}: {} labelled pixels\n  dice_loss {:.4f}  iou_score {:.4f}\n  loss {:.4f}  "
                                  "pixel accuracy {:.4f}  mean IoU {:.4f}  mean dice {:.4f}\n",
                                  title, r.samples, r.dice_loss, r.mean_iou, r.loss, r.top1, r.mean_iou, r.macro_f1);
    out += fmt::format("  {:<{}}  {:>7}  {:>7}  {:>9}  {:>9}  {:>10}\n", "class", w, "IoU", "dice", "precision",
                       "recall", "pixels");
    for (const auto& m : r.per_class)
      out += fmt::format("  {:<{}}  {:>7.4f}  {:>7.4f}  {:>9.4f}  {:>9.4f}  {:>10}\n", m.name.substr(0, 32), w, m.iou,
                         m.f1, m.precision, m.recall, m.support);
    return out;
  }
  std::string out = fmt::format("{}: {} samples\n  loss {:.4f}  top-1 {:.4f}  top-5 {:.4f}  macro F1 {:.4f}  "
                                "micro F1 {:.4f}\n",
                                title, r.samples, r.loss, r.top1, r.top5, r.macro_f1, r.micro_f1);
  out += fmt::format("  {:<{}}  {:>9}  {:>9}  {:>9}  {:>8}\n", "class", w, "precision", "recall", "f1", "support");
  for (const auto& m : r.per_class)
    out += fmt::format("  {:<{}}  {:>9.4f}  {:>9.4f}  {:>9.4f}  {:>8}\n", m.name.substr(0, 32), w, m.precision,
                       m.recall, m.f1, m.support);
  if (r.confusion.size() <= 20) {
    out += "  confusion matrix (rows: true, columns: predicted)\n";
    for (const auto& row : r.confusion) {
      out += " ";
      for (int64_t v : row) out += fmt::format(" {:>6}", v);
      out += "\n";
    }
  }
  return out;
}

}  // namespace convoy
