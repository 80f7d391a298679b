#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace densenet::train {

/// The learning-rate schedules of the original's config.yaml (`lr-type`), plus torch's StepLR.
enum class LrType { MultiStep, Step, Cosine, Triangle };

/// "multistep" | "step" | "cosine" | "triangle". Throws c10::Error naming the value given and
/// the accepted ones.
LrType parse_lr_type(const std::string& name);
std::string lr_type_name(LrType type);

struct ScheduleOptions {
  LrType type = LrType::MultiStep;
  double lr = 0.1;  // the base (peak) learning rate
  int64_t epochs = 1;
  int64_t steps_per_epoch = 1;  // optimizer steps (iterations) per epoch
  /// Epochs (fractional allowed) since the start of training, warm-up included, at which
  /// multistep multiplies the rate by `gamma`. Empty means the DenseNet paper's
  /// {0.5 * epochs, 0.75 * epochs} (Huang et al. 2017, section 4.2).
  std::vector<double> milestones;
  double gamma = 0.1;
  /// step: lr * gamma^floor(epoch / step_size) (the original's ImageNet schedule, 30 epochs).
  double step_size = 30;
  /// Linear warm-up over the first warmup_epochs, per iteration, from
  /// lr * warmup_start_factor to lr (torch.optim.lr_scheduler.LinearLR semantics).
  double warmup_epochs = 0;
  double warmup_start_factor = 0.1;
  double min_lr = 0;  // cosine's eta_min
};

/// The learning rate as a pure function of the global iteration (0-based optimizer step), so a
/// resumed run needs nothing but its step count to continue exactly.
///
/// Let S = steps_per_epoch, T = epochs * S and W = round(warmup_epochs * S). For step < W the
/// rate is the main schedule's times LinearLR's factor
///   f = warmup_start_factor + (1 - warmup_start_factor) * step / W.
/// The main schedules:
/// - multistep: lr * gamma^(number of milestones m with round(m * S) <= step), i.e. torch's
///   MultiStepLR stepped per iteration (after warm-up, SequentialLR(LinearLR, MultiStepLR with
///   milestones shifted by W));
/// - step: lr * gamma^floor(step / round(step_size * S)) (torch's StepLR per iteration);
/// - cosine: CosineAnnealingLR's closed form over the iterations after warm-up,
///   min_lr + (lr - min_lr) * (1 + cos(pi * (step - W) / (T - W))) / 2, as
///   SequentialLR(LinearLR, CosineAnnealingLR(T_max = T - W)) gives;
/// - triangle: the original's (wandering007/efficient-densenet-pytorch, demo.py on_sample): 4
///   triangular cycles between min(1e-3, lr) and lr over the first 90% of the iterations
///   (cycle length C = floor(floor(0.9 * T) / 4)), then a linear decay from min(1e-3, lr) to 0
///   at step T. It starts low, so it takes no warm-up.
class Schedule {
 public:
  /// Throws c10::Error naming the first invalid option and the accepted range.
  explicit Schedule(ScheduleOptions options);

  /// The learning rate of optimizer step `step`, 0 <= step <= total_steps() (step ==
  /// total_steps() is where the run ends). Throws c10::Error outside that range.
  double lr_at(int64_t step) const;

  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_steps_; }
  /// The milestones in iterations, round(m * steps_per_epoch), ascending (multistep).
  const std::vector<int64_t>& milestone_steps() const { return milestone_steps_; }
  const ScheduleOptions& options() const { return options_; }

 private:
  double main_lr(int64_t step) const;

  ScheduleOptions options_;
  int64_t total_steps_ = 0;
  int64_t warmup_steps_ = 0;
  int64_t step_period_ = 0;  // step: round(step_size * steps_per_epoch) iterations
  std::vector<int64_t> milestone_steps_;
};

}  // namespace densenet::train
