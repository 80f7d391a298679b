#include "densenet/train/schedule.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace densenet::train {

namespace {

const char* const kLrTypes = "multistep, step, cosine or triangle";

int64_t epochs_to_steps(double epochs, int64_t steps_per_epoch) {
  return static_cast<int64_t>(std::llround(epochs * static_cast<double>(steps_per_epoch)));
}

std::string join(const std::vector<double>& values) {
  std::ostringstream out;
  for (size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

}  // namespace

LrType parse_lr_type(const std::string& name) {
  if (name == "multistep") return LrType::MultiStep;
  if (name == "step") return LrType::Step;
  if (name == "cosine") return LrType::Cosine;
  if (name == "triangle") return LrType::Triangle;
  TORCH_CHECK(false, "unknown lr-type '", name, "': use ", kLrTypes);
}

std::string lr_type_name(LrType type) {
  switch (type) {
    case LrType::MultiStep:
      return "multistep";
    case LrType::Step:
      return "step";
    case LrType::Cosine:
      return "cosine";
    case LrType::Triangle:
      return "triangle";
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled LrType");
}

Schedule::Schedule(ScheduleOptions options) : options_(std::move(options)) {
  const ScheduleOptions& o = options_;
  TORCH_CHECK(std::isfinite(o.lr) && o.lr > 0, "lr must be > 0, got ", o.lr);
  TORCH_CHECK(o.epochs >= 1, "epochs must be >= 1, got ", o.epochs);
  TORCH_CHECK(o.steps_per_epoch >= 1, "steps per epoch must be >= 1, got ", o.steps_per_epoch,
              " (is the training set smaller than one batch?)");
  TORCH_CHECK(std::isfinite(o.gamma) && o.gamma > 0 && o.gamma <= 1,
              "lr gamma must be in (0, 1], got ", o.gamma);
  TORCH_CHECK(std::isfinite(o.warmup_epochs) && o.warmup_epochs >= 0 &&
                  o.warmup_epochs < static_cast<double>(o.epochs),
              "warmup-epochs must be in [0, epochs) = [0, ", o.epochs, "), got ", o.warmup_epochs);
  TORCH_CHECK(std::isfinite(o.warmup_start_factor) && o.warmup_start_factor > 0 &&
                  o.warmup_start_factor <= 1,
              "warm-up start factor must be in (0, 1], got ", o.warmup_start_factor);
  TORCH_CHECK(std::isfinite(o.min_lr) && o.min_lr >= 0 && o.min_lr <= o.lr,
              "min-lr must be in [0, lr] = [0, ", o.lr, "], got ", o.min_lr);
  TORCH_CHECK(o.type != LrType::Triangle || o.warmup_epochs == 0,
              "lr-type triangle takes no warm-up (its cycles start at min(1e-3, lr)), got "
              "warmup-epochs ",
              o.warmup_epochs, ": set warmup-epochs to 0 or use another lr-type");

  total_steps_ = o.epochs * o.steps_per_epoch;
  warmup_steps_ = epochs_to_steps(o.warmup_epochs, o.steps_per_epoch);

  if (o.type == LrType::MultiStep) {
    if (options_.milestones.empty()) {
      options_.milestones = {0.5 * static_cast<double>(o.epochs),
                             0.75 * static_cast<double>(o.epochs)};
    }
    const std::vector<double>& m = options_.milestones;
    for (size_t i = 0; i < m.size(); ++i) {
      TORCH_CHECK(std::isfinite(m[i]) && m[i] > 0 && m[i] <= static_cast<double>(o.epochs),
                  "milestones must be epochs in (0, epochs] = (0, ", o.epochs, "], got ", join(m));
      TORCH_CHECK(i == 0 || m[i] > m[i - 1], "milestones must increase, got ", join(m));
      milestone_steps_.push_back(epochs_to_steps(m[i], o.steps_per_epoch));
    }
  }
  if (o.type == LrType::Step) {
    TORCH_CHECK(std::isfinite(o.step_size) && o.step_size > 0,
                "lr step size must be > 0 epochs, got ", o.step_size);
    // At least one iteration, so a step size below one iteration still decays per iteration.
    step_period_ = std::max<int64_t>(1, epochs_to_steps(o.step_size, o.steps_per_epoch));
  }
}

double Schedule::main_lr(int64_t step) const {
  const ScheduleOptions& o = options_;
  switch (o.type) {
    case LrType::MultiStep: {
      const auto passed = std::upper_bound(milestone_steps_.begin(), milestone_steps_.end(), step) -
                          milestone_steps_.begin();
      return o.lr * std::pow(o.gamma, static_cast<double>(passed));
    }
    case LrType::Step:
      return o.lr * std::pow(o.gamma, static_cast<double>(step / step_period_));
    case LrType::Cosine: {
      if (step < warmup_steps_) return o.lr;
      const double t = static_cast<double>(step - warmup_steps_);
      const double t_max = static_cast<double>(total_steps_ - warmup_steps_);
      return o.min_lr + (o.lr - o.min_lr) * (1 + std::cos(M_PI * t / t_max)) / 2;
    }
    case LrType::Triangle: {
      // Transcribed from the original's demo.py (on_sample, lr_type == 'triangle').
      constexpr int64_t kCycles = 4;
      const double max_lr = o.lr;
      const double min_lr = std::min(1e-3, o.lr);
      const int64_t total = total_steps_;
      const int64_t cycle = static_cast<int64_t>(static_cast<double>(total) * 0.9) / kCycles;
      if (step < cycle * kCycles) {
        const double p = static_cast<double>(step % cycle);
        const double c = static_cast<double>(cycle);
        if (p < c / 2) return min_lr + (max_lr - min_lr) * p * 2 / c;
        return max_lr - (max_lr - min_lr) * (p - c / 2) * 2 / c;
      }
      return min_lr * static_cast<double>(total - step) /
             static_cast<double>(total - cycle * kCycles);
    }
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled LrType");
}

double Schedule::lr_at(int64_t step) const {
  TORCH_CHECK(step >= 0 && step <= total_steps_, "learning-rate step must be in [0, ", total_steps_,
              "] (epochs * steps per epoch), got ", step);
  double lr = main_lr(step);
  if (step < warmup_steps_) {
    // LinearLR's closed form (torch/optim/lr_scheduler.py, _get_closed_form_lr).
    const double f = options_.warmup_start_factor + (1 - options_.warmup_start_factor) *
                                                        static_cast<double>(step) /
                                                        static_cast<double>(warmup_steps_);
    lr *= f;
  }
  return lr;
}

}  // namespace densenet::train
