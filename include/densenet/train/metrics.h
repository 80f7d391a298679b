#pragma once

#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// For each k in `ks`, the number of samples whose label is among the k highest logits.
/// logits (N, C) floating point, labels (N) int64 in [0, C). Ties are ranked as torch.topk
/// (largest, sorted) ranks them: one topk of max(ks) and then its first k columns, as
/// torchvision's references/classification/utils.py accuracy() counts. A k >= C counts every
/// sample. Throws c10::Error for other shapes or dtypes, a k < 1, or a label out of range.
std::vector<int64_t> count_topk_correct(const torch::Tensor& logits, const torch::Tensor& labels,
                                        const std::vector<int64_t>& ks);

/// One row of metrics.csv / metrics.jsonl: an epoch of training and its evaluation.
struct EpochRecord {
  int64_t epoch = 0;                      // 1-based
  double lr = 0;                          // the learning rate at the epoch's last step
  double train_loss = 0, train_top1 = 0;  // means over the epoch's samples; top-1 accuracy in %
  // Accuracy in %; NaN when the epoch was not evaluated.
  double eval_loss = std::numeric_limits<double>::quiet_NaN();
  double eval_top1 = std::numeric_limits<double>::quiet_NaN();
  double eval_top5 = std::numeric_limits<double>::quiet_NaN();
  double epoch_seconds = 0;      // training only, wall clock
  double eval_seconds = 0;       // wall clock of the evaluation (0 when not evaluated)
  double images_per_second = 0;  // training images / epoch_seconds
  double data_wait_share = 0;    // fraction in [0, 1] of epoch_seconds spent waiting for data
  double elapsed_seconds = 0;    // wall clock since the run started, at the end of this epoch
  /// Data-parallel runs: fraction in [0, 1] of epoch_seconds that rank 0 spent waiting for
  /// collectives that computation did not hide (gradient buckets after backward, the step's
  /// sums, sync-bn's statistics); 0 for one process. Optional when parsing: histories written
  /// before it existed read as 0.
  double comm_wait_share = 0;
  int64_t skipped_steps = 0;  // optimiser steps the loss scaler skipped (inf/NaN gradients)
  // The dynamic loss scale at the epoch's end; NaN without loss scaling.
  double loss_scale = std::numeric_limits<double>::quiet_NaN();
  // The model EMA's evaluation (model-ema), as eval_*; NaN without an EMA. Optional when
  // parsing: histories written before it existed read as NaN.
  double ema_eval_loss = std::numeric_limits<double>::quiet_NaN();
  double ema_eval_top1 = std::numeric_limits<double>::quiet_NaN();
  double ema_eval_top5 = std::numeric_limits<double>::quiet_NaN();
};

/// One field of EpochRecord: a column of metrics.csv and metrics.jsonl, and a key of each record
/// in a checkpoint's `history`. metric_fields() is the one list all of them are written and read
/// from, so a field cannot be forgotten in one of them.
struct MetricField {
  std::string name;                  // "train_loss"
  int64_t EpochRecord::*count;       // the member when it is a count (written as an integer)
  double EpochRecord::*real;         // the member when it is a real number (exactly one is set)
  std::optional<double> if_missing;  // what a file written before the field existed reads as;
                                     // nullopt: the field is required
  double get(const EpochRecord& record) const;
  void set(EpochRecord& record, double value) const;
};

/// Every field, in column order: epoch, lr, train_loss, ..., loss_scale.
const std::vector<MetricField>& metric_fields();

/// The CSV and JSON-lines column names, in order (metric_fields()' names).
const std::vector<std::string>& metric_columns();

/// metrics.jsonl text: one JSON object per record, keys in metric_columns() order, NaN as null.
/// With parse_metrics_jsonl, a way to keep the history in a checkpoint as a string.
std::string format_metrics_jsonl(const std::vector<EpochRecord>& history);

/// Parses metrics.jsonl text (one JSON object per line, null for NaN), for tools and resume.
/// skipped_steps and loss_scale may be missing (files from before amp): 0 and NaN; the ema_*
/// columns too (files from before model-ema): NaN.
/// Throws c10::Error naming the line that is not a record.
std::vector<EpochRecord> parse_metrics_jsonl(const std::string& text, const std::string& source);

/// The run directory's metrics.csv and metrics.jsonl, one row per epoch. Both files are
/// rewritten whole and atomically (densenet::write_file_atomically) on every change, so a crash
/// leaves the previous complete version and a resumed run never duplicates or loses a row.
class MetricLogger {
 public:
  explicit MetricLogger(std::string run_dir);

  /// On resume: the history becomes exactly the epochs the checkpoint had (rows the
  /// interrupted run wrote after it are dropped), and both files are rewritten.
  void restore(const std::vector<EpochRecord>& history);

  /// Appends `record` (its epoch must be greater than the last one's) and rewrites both files.
  /// Throws c10::Error when the epoch does not increase or a file cannot be written.
  void log(const EpochRecord& record);

  const std::vector<EpochRecord>& history() const { return history_; }
  std::string csv_path() const { return run_dir_ + "/metrics.csv"; }
  std::string jsonl_path() const { return run_dir_ + "/metrics.jsonl"; }

 private:
  void write() const;

  std::string run_dir_;
  std::vector<EpochRecord> history_;
};

/// Draws loss (left panel) and accuracy in % (right panel) per epoch, train and eval (top-1;
/// top-5 dashed), with axes, ticks, grid and legends, as a 1200x480 PNG drawn with cairo, and
/// writes it atomically to `png_path`. Epochs without evaluation (NaN) are left out of the eval
/// lines. Throws c10::Error when the image cannot be drawn or written.
void plot_training_curves(const std::vector<EpochRecord>& history, const std::string& png_path,
                          const std::string& title);

}  // namespace densenet::train
