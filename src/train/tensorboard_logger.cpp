#include "densenet/train/tensorboard_logger.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace densenet::train {

TensorBoardLogger::TensorBoardLogger(TensorBoardLoggerOptions options, std::ostream& warnings)
    : options_(std::move(options)), warnings_(warnings) {
  TORCH_CHECK(options_.log_interval >= 1, "TensorBoard: log_interval must be >= 1, got ",
              options_.log_interval);
  try {
    writer_ = std::make_unique<TensorBoardWriter>(options_.run_dir);
  } catch (const c10::Error& error) {
    warnings_ << "warning: no TensorBoard events for this run (training goes on; metrics.csv has "
                 "every epoch): "
              << error.what_without_backtrace() << "\n";
  }
}

// The events still buffered go to disk here, where a failure can still be told (the writer's
// own destructor cannot): the run is ending, and on a full disk they are its last events.
TensorBoardLogger::~TensorBoardLogger() {
  if (!writer_) return;
  try {
    writer_->close();
  } catch (const c10::Error& error) {
    warnings_ << "warning: the last TensorBoard events were not written (metrics.csv has every "
                 "epoch): "
              << error.what_without_backtrace() << "\n";
  }
}

// Runs `write` unless an earlier write failed; the first failure warns once and closes the
// file (see the class comment for why training goes on).
template <typename Write>
void TensorBoardLogger::guarded(Write write) {
  if (!writer_) return;
  try {
    write(*writer_);
  } catch (const c10::Error& error) {
    warnings_ << "warning: TensorBoard events are no longer written (training goes on; "
                 "metrics.csv has every epoch): "
              << error.what_without_backtrace() << "\n";
    writer_.reset();
  }
}

void TensorBoardLogger::scalar(const std::string& tag, double value, int64_t step,
                               double wall_time) {
  guarded([&](TensorBoardWriter& writer) { writer.add_scalar(tag, value, step, wall_time); });
}

void TensorBoardLogger::resume(int64_t global_step, double epoch_seconds,
                               double epoch_wait_seconds) {
  base_seconds_ = epoch_seconds;
  base_wait_seconds_ = epoch_wait_seconds;
  guarded([&](TensorBoardWriter& writer) {
    writer.add_session_start(global_step + 1, wall_time_now());
    writer.flush();
  });
}

void TensorBoardLogger::step(const StepScalars& step) {
  last_ = step;
  last_wall_time_ = wall_time_now();
  loss_sum_ += step.loss_sum;
  correct_ += step.correct;
  images_ += step.images;
  ++steps_;
  if (step.global_step % options_.log_interval == 0) write_interval();
}

void TensorBoardLogger::write_interval() {
  if (steps_ == 0) return;
  const int64_t at = last_.global_step;
  const double t = last_wall_time_;
  if (images_ > 0) {  // data-parallel steps whose ranks all had no readable image count none
    scalar("train/loss", loss_sum_ / static_cast<double>(images_), at, t);
    scalar("train/top1", 100.0 * static_cast<double>(correct_) / static_cast<double>(images_), at,
           t);
  }
  const double seconds = last_.epoch_seconds - base_seconds_;
  if (seconds > 0) {
    scalar("train/images_per_second", static_cast<double>(images_) / seconds, at, t);
    scalar("train/data_wait_share", (last_.epoch_wait_seconds - base_wait_seconds_) / seconds, at,
           t);
  }
  scalar("train/lr", last_.lr, at, t);
  if (options_.loss_scaling) scalar("train/loss_scale", last_.loss_scale, at, t);
  base_seconds_ = last_.epoch_seconds;
  base_wait_seconds_ = last_.epoch_wait_seconds;
  loss_sum_ = 0;
  correct_ = images_ = steps_ = 0;
}

void TensorBoardLogger::epoch(const EpochRecord& record) {
  write_interval();
  base_seconds_ = base_wait_seconds_ = 0;  // the next epoch's clocks start at 0
  const int64_t at = record.epoch;
  const double t = wall_time_now();
  const std::string eval = "epoch/" + options_.eval_name;
  scalar("epoch/train_loss", record.train_loss, at, t);
  scalar("epoch/train_top1", record.train_top1, at, t);
  if (!std::isnan(record.eval_loss)) {
    scalar(eval + "_loss", record.eval_loss, at, t);
    scalar(eval + "_top1", record.eval_top1, at, t);
    scalar(eval + "_top5", record.eval_top5, at, t);
  }
  if (!std::isnan(record.ema_eval_loss)) {  // model-ema: metrics.csv's ema_eval_* columns
    const std::string ema = "epoch/ema_" + options_.eval_name;
    scalar(ema + "_loss", record.ema_eval_loss, at, t);
    scalar(ema + "_top1", record.ema_eval_top1, at, t);
    scalar(ema + "_top5", record.ema_eval_top5, at, t);
  }
  scalar("epoch/lr", record.lr, at, t);
  scalar("epoch/images_per_second", record.images_per_second, at, t);
  scalar("epoch/data_wait_share", record.data_wait_share, at, t);
  if (options_.loss_scaling) {
    scalar("epoch/loss_scale", record.loss_scale, at, t);
    scalar("epoch/skipped_steps", static_cast<double>(record.skipped_steps), at, t);
  }
  if (options_.data_parallel) scalar("epoch/comm_wait_share", record.comm_wait_share, at, t);
  guarded([](TensorBoardWriter& writer) { writer.flush(); });
}

void TensorBoardLogger::flush() {
  write_interval();
  guarded([](TensorBoardWriter& writer) { writer.flush(); });
}

}  // namespace densenet::train
