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

double MetricField::get(const EpochRecord& record) const {
  return count != nullptr ? static_cast<double>(record.*count) : record.*real;
}

void MetricField::set(EpochRecord& record, double value) const {
  if (count != nullptr) {
    record.*count = static_cast<int64_t>(value);
  } else {
    record.*real = value;
  }
}

const std::vector<MetricField>& metric_fields() {
  using R = EpochRecord;
  const auto count = [](const char* name, int64_t R::*member, std::optional<double> missing) {
    return MetricField{name, member, nullptr, missing};
  };
  const auto real = [](const char* name, double R::*member, std::optional<double> missing) {
    return MetricField{name, nullptr, member, missing};
  };
  const std::optional<double> required;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  static const std::vector<MetricField> fields = {
      count("epoch", &R::epoch, required),
      real("lr", &R::lr, required),
      real("train_loss", &R::train_loss, required),
      real("train_top1", &R::train_top1, required),
      real("eval_loss", &R::eval_loss, required),
      real("eval_top1", &R::eval_top1, required),
      real("eval_top5", &R::eval_top5, required),
      real("epoch_seconds", &R::epoch_seconds, required),
      real("eval_seconds", &R::eval_seconds, required),
      real("images_per_second", &R::images_per_second, required),
      real("data_wait_share", &R::data_wait_share, required),
      real("elapsed_seconds", &R::elapsed_seconds, required),
      // Added with data-parallel training, then with amp: older histories lack them.
      real("comm_wait_share", &R::comm_wait_share, 0.0),
      count("skipped_steps", &R::skipped_steps, 0.0),
      real("loss_scale", &R::loss_scale, nan),
      // Added with model-ema.
      real("ema_eval_loss", &R::ema_eval_loss, nan),
      real("ema_eval_top1", &R::ema_eval_top1, nan),
      real("ema_eval_top5", &R::ema_eval_top5, nan),
  };
  return fields;
}

const std::vector<std::string>& metric_columns() {
  static const std::vector<std::string> columns = [] {
    std::vector<std::string> names;
    for (const MetricField& field : metric_fields()) names.push_back(field.name);
    return names;
  }();
  return columns;
}

namespace {

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
  const auto& fields = metric_fields();
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + fields[i].name;
  out += '\n';
  for (const EpochRecord& record : history) {
    for (size_t i = 0; i < fields.size(); ++i) {
      out += (i ? "," : "") + csv_number(fields[i].get(record));
    }
    out += '\n';
  }
  return out;
}

}  // namespace

std::string format_metrics_jsonl(const std::vector<EpochRecord>& history) {
  std::string out;
  for (const EpochRecord& record : history) {
    nlohmann::ordered_json row;
    for (const MetricField& field : metric_fields()) {
      // A count is written as one; nlohmann writes a NaN real as null, JSON's missing value.
      if (field.count != nullptr) {
        row[field.name] = record.*field.count;
      } else {
        row[field.name] = record.*field.real;
      }
    }
    out += row.dump() + '\n';
  }
  return out;
}

std::vector<EpochRecord> parse_metrics_jsonl(const std::string& text, const std::string& source) {
  std::vector<EpochRecord> history;
  std::istringstream in(text);
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    TORCH_CHECK(row.is_object(), source, ":", line_number, ": not a JSON object: ", line);
    EpochRecord record;
    for (const MetricField& field : metric_fields()) {
      const auto it = row.find(field.name);
      if (it == row.end() && field.if_missing) {
        field.set(record, *field.if_missing);  // a file from before the field existed
        continue;
      }
      TORCH_CHECK(it != row.end() && (it->is_number() || it->is_null()), source, ":", line_number,
                  ": '", field.name, "' is missing or not a number");
      field.set(record,
                it->is_null() ? std::numeric_limits<double>::quiet_NaN() : it->get<double>());
    }
    history.push_back(record);
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
