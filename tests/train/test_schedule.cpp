#include "densenet/train/schedule.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>

#include "support/expect_error.h"

namespace densenet::train {
namespace {

// Written by tests/reference/make_train_reference.py (the golden_data fixture).
const std::string kSchedules = std::string(DENSENET_GOLDEN_DIR) + "/train/schedules.json";

nlohmann::json load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path + " (run the golden_data fixture)");
  return nlohmann::json::parse(in);
}

ScheduleOptions options_from(const nlohmann::json& o) {
  ScheduleOptions options;
  options.type = parse_lr_type(o.at("type").get<std::string>());
  options.lr = o.at("lr").get<double>();
  options.epochs = o.at("epochs").get<int64_t>();
  options.steps_per_epoch = o.at("steps_per_epoch").get<int64_t>();
  options.milestones = o.at("milestones").get<std::vector<double>>();
  options.gamma = o.at("gamma").get<double>();
  options.step_size = o.at("step_size").get<double>();
  options.warmup_epochs = o.at("warmup_epochs").get<double>();
  options.warmup_start_factor = o.at("warmup_start_factor").get<double>();
  options.min_lr = o.at("min_lr").get<double>();
  return options;
}

TEST(Schedule, MatchesTorchSchedulersAtEveryStep) {
  const nlohmann::json reference = load(kSchedules);
  ASSERT_GE(reference.at("cases").size(), 10u);
  for (const auto& c : reference.at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    const Schedule schedule(options_from(c.at("options")));
    const auto lrs = c.at("lrs").get<std::vector<double>>();
    ASSERT_EQ(static_cast<int64_t>(lrs.size()), schedule.total_steps() + 1) << name;
    for (size_t step = 0; step < lrs.size(); ++step) {
      // torch's chainable schedulers multiply step by step (CosineAnnealingLR's recursive form),
      // so they differ from the closed form by accumulated rounding: 1e-12 of the base lr.
      ASSERT_NEAR(schedule.lr_at(static_cast<int64_t>(step)), lrs[step],
                  1e-12 * schedule.options().lr)
          << name << " at step " << step;
    }
  }
}

TEST(Schedule, DefaultMilestonesAreThePapers) {
  ScheduleOptions options;
  options.epochs = 300;
  options.steps_per_epoch = 10;
  const Schedule schedule(options);
  EXPECT_EQ(schedule.milestone_steps(), (std::vector<int64_t>{1500, 2250}));
  EXPECT_DOUBLE_EQ(schedule.lr_at(1499), 0.1);
  EXPECT_NEAR(schedule.lr_at(1500), 0.01, 1e-15);
  EXPECT_NEAR(schedule.lr_at(2250), 0.001, 1e-15);
}

TEST(Schedule, OriginalImageNetStepSchedule) {
  // The original's ImageNet recipe: lr 0.1 divided by 10 every 30 of 90 epochs.
  ScheduleOptions options;
  options.type = LrType::Step;
  options.epochs = 90;
  options.steps_per_epoch = 5005;
  const Schedule schedule(options);
  EXPECT_DOUBLE_EQ(schedule.lr_at(30 * 5005 - 1), 0.1);
  EXPECT_NEAR(schedule.lr_at(30 * 5005), 0.01, 1e-15);
  EXPECT_NEAR(schedule.lr_at(60 * 5005), 0.001, 1e-15);
  EXPECT_NEAR(schedule.lr_at(90 * 5005), 0.0001, 1e-15);
}

TEST(Schedule, WarmupStartsAtTheStartFactor) {
  ScheduleOptions options;
  options.type = LrType::Cosine;
  options.lr = 0.4;
  options.epochs = 4;
  options.steps_per_epoch = 10;
  options.warmup_epochs = 1;
  options.warmup_start_factor = 0.25;
  const Schedule schedule(options);
  EXPECT_EQ(schedule.warmup_steps(), 10);
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(schedule.lr_at(5), 0.4 * (0.25 + 0.75 * 0.5));
  EXPECT_DOUBLE_EQ(schedule.lr_at(10), 0.4);
  EXPECT_NEAR(schedule.lr_at(40), 0.0, 1e-15);
}

TEST(Schedule, ParsesTheOriginalsNames) {
  EXPECT_EQ(parse_lr_type("multistep"), LrType::MultiStep);
  EXPECT_EQ(parse_lr_type("step"), LrType::Step);
  EXPECT_EQ(parse_lr_type("cosine"), LrType::Cosine);
  EXPECT_EQ(parse_lr_type("triangle"), LrType::Triangle);
  for (const auto type : {LrType::MultiStep, LrType::Step, LrType::Cosine, LrType::Triangle}) {
    EXPECT_EQ(parse_lr_type(lr_type_name(type)), type);
  }
  EXPECT_ERROR_CONTAINS(parse_lr_type("linear"),
                        "unknown lr-type 'linear': use multistep, step, cosine or triangle");
}

ScheduleOptions valid() {
  ScheduleOptions options;
  options.epochs = 10;
  options.steps_per_epoch = 5;
  return options;
}

TEST(Schedule, BadOptionsAreClearErrors) {
  auto with = [](auto change) {
    ScheduleOptions options = valid();
    change(options);
    return options;
  };
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.lr = 0; })), "lr must be > 0, got 0");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.lr = NAN; })), "lr must be > 0");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.epochs = 0; })),
                        "epochs must be >= 1, got 0");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.steps_per_epoch = 0; })),
                        "steps per epoch must be >= 1, got 0");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.gamma = 2; })),
                        "lr gamma must be in (0, 1], got 2");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) {
                          o.milestones = {5, 3};
                        })),
                        "milestones must increase, got 5,3");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) {
                          o.milestones = {5, 11};
                        })),
                        "milestones must be epochs in (0, epochs] = (0, 10], got 5,11");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.milestones = {-1}; })),
                        "milestones must be epochs in (0, epochs]");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) {
                          o.type = LrType::Step;
                          o.step_size = 0;
                        })),
                        "lr step size must be > 0 epochs, got 0");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.warmup_epochs = 10; })),
                        "warmup-epochs must be in [0, epochs) = [0, 10), got 10");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) { o.warmup_start_factor = 0; })),
                        "warm-up start factor must be in (0, 1], got 0");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) {
                          o.type = LrType::Cosine;
                          o.min_lr = 0.5;
                        })),
                        "min-lr must be in [0, lr] = [0, 0.1], got 0.5");
  EXPECT_ERROR_CONTAINS(Schedule(with([](auto& o) {
                          o.type = LrType::Triangle;
                          o.warmup_epochs = 1;
                        })),
                        "lr-type triangle takes no warm-up");
  const Schedule schedule(valid());
  EXPECT_ERROR_CONTAINS(schedule.lr_at(-1), "learning-rate step must be in [0, 50]");
  EXPECT_ERROR_CONTAINS(schedule.lr_at(51), "got 51");
}

}  // namespace
}  // namespace densenet::train
