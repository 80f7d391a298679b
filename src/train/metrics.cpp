#include "densenet/train/metrics.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "densenet/io/atomic_file.h"

namespace densenet::train {

std::vector<int64_t> count_topk_correct(const torch::Tensor& logits, const torch::Tensor& labels,
                                        const std::vector<int64_t>& ks) {
  TORCH_CHECK(logits.dim() == 2 && logits.is_floating_point(),
              "top-k accuracy needs floating-point logits of shape (N, C), got ",
              logits.scalar_type(), " of shape ", logits.sizes());
  TORCH_CHECK(
      labels.dim() == 1 && labels.scalar_type() == torch::kLong && labels.size(0) == logits.size(0),
      "top-k accuracy needs int64 labels of shape (N) = (", logits.size(0), "), got ",
      labels.scalar_type(), " of shape ", labels.sizes());
  TORCH_CHECK(!ks.empty(), "top-k accuracy needs at least one k");
  const int64_t classes = logits.size(1);
  int64_t max_k = 0;
  for (const int64_t k : ks) {
    TORCH_CHECK(k >= 1, "top-k accuracy needs k >= 1, got ", k);
    max_k = std::max(max_k, std::min(k, classes));
  }
  std::vector<int64_t> counts(ks.size(), 0);
  if (logits.size(0) == 0) return counts;
  TORCH_CHECK(classes >= 1, "top-k accuracy needs at least one class, got logits of shape ",
              logits.sizes());
  const auto [min_label, max_label] = torch::aminmax(labels);
  TORCH_CHECK(min_label.item<int64_t>() >= 0 && max_label.item<int64_t>() < classes,
              "labels must be class indices in [0, ", classes, "), got labels from ",
              min_label.item<int64_t>(), " to ", max_label.item<int64_t>());

  torch::NoGradGuard no_grad;
  // (N, max_k): the classes of the max_k highest logits, best first (torch.topk's tie order).
  const torch::Tensor predicted = std::get<1>(logits.detach().topk(max_k, 1, true, true));
  // (N, max_k) 0/1: position j holds the label. Each row has at most one 1, so a cumulative sum
  // along the row says whether the label is within the first k.
  const torch::Tensor hit =
      predicted.eq(labels.to(predicted.device()).unsqueeze(1)).to(torch::kLong);
  const torch::Tensor within = hit.cumsum(1).sum(0).cpu();  // (max_k): samples correct at k = j+1
  for (size_t i = 0; i < ks.size(); ++i) {
    counts[i] = within[std::min(ks[i], max_k) - 1].item<int64_t>();
  }
  return counts;
}

const std::vector<std::string>& metric_columns() {
  static const std::vector<std::string> columns = {"epoch",           "lr",
                                                   "train_loss",      "train_top1",
                                                   "eval_loss",       "eval_top1",
                                                   "eval_top5",       "epoch_seconds",
                                                   "eval_seconds",    "images_per_second",
                                                   "data_wait_share", "elapsed_seconds",
                                                   "comm_wait_share", "skipped_steps",
                                                   "loss_scale",      "ema_eval_loss",
                                                   "ema_eval_top1",   "ema_eval_top5"};
  return columns;
}

namespace {

std::vector<double> values_of(const EpochRecord& r) {
  return {static_cast<double>(r.epoch),
          r.lr,
          r.train_loss,
          r.train_top1,
          r.eval_loss,
          r.eval_top1,
          r.eval_top5,
          r.epoch_seconds,
          r.eval_seconds,
          r.images_per_second,
          r.data_wait_share,
          r.elapsed_seconds,
          r.comm_wait_share,
          static_cast<double>(r.skipped_steps),
          r.loss_scale,
          r.ema_eval_loss,
          r.ema_eval_top1,
          r.ema_eval_top5};
}

EpochRecord record_of(const std::vector<double>& v) {
  EpochRecord r;
  r.epoch = static_cast<int64_t>(v[0]);
  r.lr = v[1];
  r.train_loss = v[2];
  r.train_top1 = v[3];
  r.eval_loss = v[4];
  r.eval_top1 = v[5];
  r.eval_top5 = v[6];
  r.epoch_seconds = v[7];
  r.eval_seconds = v[8];
  r.images_per_second = v[9];
  r.data_wait_share = v[10];
  r.elapsed_seconds = v[11];
  r.comm_wait_share = v[12];
  r.skipped_steps = static_cast<int64_t>(v[13]);
  r.loss_scale = v[14];
  r.ema_eval_loss = v[15];
  r.ema_eval_top1 = v[16];
  r.ema_eval_top5 = v[17];
  return r;
}

/// Shortest text that reads back as the same double (17 significant digits at most); NaN is an
/// empty CSV field, which pandas and Python's csv read as missing.
std::string csv_number(double value) {
  if (std::isnan(value)) return "";
  char text[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(text, sizeof(text), "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

std::string to_csv(const std::vector<EpochRecord>& history) {
  std::string out;
  const auto& columns = metric_columns();
  for (size_t i = 0; i < columns.size(); ++i) out += (i ? "," : "") + columns[i];
  out += '\n';
  for (const EpochRecord& record : history) {
    const auto values = values_of(record);
    for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + csv_number(values[i]);
    out += '\n';
  }
  return out;
}

}  // namespace

std::string format_metrics_jsonl(const std::vector<EpochRecord>& history) {
  std::string out;
  const auto& columns = metric_columns();
  for (const EpochRecord& record : history) {
    const auto values = values_of(record);
    nlohmann::ordered_json row;
    row[columns[0]] = record.epoch;
    // nlohmann writes NaN as null, JSON's missing value.
    for (size_t i = 1; i < values.size(); ++i) row[columns[i]] = values[i];
    row["skipped_steps"] = record.skipped_steps;  // a count, written as one (in place)
    out += row.dump() + '\n';
  }
  return out;
}

std::vector<EpochRecord> parse_metrics_jsonl(const std::string& text, const std::string& source) {
  std::vector<EpochRecord> history;
  std::istringstream in(text);
  std::string line;
  int64_t line_number = 0;
  const auto& columns = metric_columns();
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    TORCH_CHECK(row.is_object(), source, ":", line_number, ": not a JSON object: ", line);
    std::vector<double> values;
    for (const auto& column : columns) {
      const auto it = row.find(column);
      if (it == row.end() && column == "comm_wait_share") {
        values.push_back(0.0);  // a history from before the column existed
        continue;
      }
      if (it == row.end() && column == "skipped_steps") {
        values.push_back(0);  // the columns of loss scaling came later: older files lack them
        continue;
      }
      if (it == row.end() && (column == "loss_scale" || column.rfind("ema_", 0) == 0)) {
        values.push_back(std::numeric_limits<double>::quiet_NaN());
        continue;
      }
      TORCH_CHECK(it != row.end() && (it->is_number() || it->is_null()), source, ":", line_number,
                  ": '", column, "' is missing or not a number");
      values.push_back(it->is_null() ? std::numeric_limits<double>::quiet_NaN()
                                     : it->get<double>());
    }
    history.push_back(record_of(values));
  }
  return history;
}

MetricLogger::MetricLogger(std::string run_dir) : run_dir_(std::move(run_dir)) {}

void MetricLogger::restore(const std::vector<EpochRecord>& history) {
  history_ = history;
  write();
}

void MetricLogger::log(const EpochRecord& record) {
  TORCH_CHECK(history_.empty() || record.epoch > history_.back().epoch, "metrics: epoch ",
              record.epoch, " logged after epoch ", history_.back().epoch,
              "; epochs must increase (restore the history before logging on resume)");
  history_.push_back(record);
  write();
}

void MetricLogger::write() const {
  write_file_atomically(csv_path(), to_csv(history_));
  write_file_atomically(jsonl_path(), format_metrics_jsonl(history_));
}

}  // namespace densenet::train
