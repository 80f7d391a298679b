#include "densenet/io/atomic_file.h"
#include "densenet/io/pth_file.h"
#include "densenet/io/state_dict.h"
#include "densenet/model/presets.h"
#include "densenet/train/checkpointer.h"
#include "densenet/train/memory_choice.h"
#include "densenet/train/metrics.h"
#include "densenet/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/expect_error.h"
#include "support/tensor_compare.h"

namespace densenet::train {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("densenet_trainer_test_" + name);
  fs::remove_all(dir);
  return dir.string();
}

// A few seconds of training: a tiny DenseNet-BC on 16x16 synthetic images, 2 epochs of 6 steps,
// with dropout (so the RNG state matters) and momentum (so the optimiser state matters).
TrainConfig tiny_config(const std::string& dir) {
  TrainConfig config;
  config.dataset = "synthetic";
  config.input_size = 16;
  config.max_train_samples = 96;
  config.max_eval_samples = 32;
  config.arch = "densenet-bc-100";
  config.block_config = {2, 2};
  config.growth_rate = 4;
  config.drop_rate = 0.1;
  config.batch_size = 16;
  config.epochs = 2;
  config.lr = 0.05;
  config.lr_type = "cosine";
  config.warmup_epochs = 0.5;
  config.workers = 2;
  config.threads = 2;
  config.output_dir = dir;
  config.save_interval = 1;
  config.keep_checkpoints = 1;
  return config;
}

StateDict snapshot(DenseNet& model) {
  StateDict copy;
  for (const auto& item : state_dict(*model)) copy.insert(item.key(), item.value().clone());
  return copy;
}

void expect_identical(const StateDict& actual, const StateDict& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& item : expected) {
    ASSERT_NE(actual.find(item.key()), nullptr) << item.key();
    EXPECT_TRUE(testing::tensors_identical(item.key(), *actual.find(item.key()), item.value()));
  }
}

// Interrupted mid-epoch (step 4 of 6) and resumed, a run ends with the same weights, bit for
// bit, as the run that was never interrupted; so do its metrics.
TEST(Trainer, ResumeMidEpochIsBitExact) {
  std::ostringstream log;
  const std::string straight_dir = fresh_dir("straight");
  Trainer straight(tiny_config(straight_dir), log, false);
  const RunSummary full = straight.run();
  ASSERT_EQ(full.epochs_completed, 2);
  ASSERT_EQ(full.global_step, 12);
  const StateDict expected = snapshot(straight.model());

  for (const int64_t stop_at : {4, 6, 9}) {
    SCOPED_TRACE("interrupted after step " + std::to_string(stop_at));
    const std::string dir = fresh_dir("interrupted_" + std::to_string(stop_at));
    {
      clear_stop_request();
      Trainer first(tiny_config(dir), log, false);
      const RunSummary part = first.run([&](int64_t step) {
        if (step == stop_at) request_stop();
      });
      clear_stop_request();
      ASSERT_TRUE(part.interrupted);
      ASSERT_EQ(part.global_step, stop_at);
    }
    TrainConfig resumed_config = tiny_config(dir);
    resumed_config.resume = dir;
    Trainer resumed(resumed_config, log, false);
    const RunSummary rest = resumed.run();
    EXPECT_FALSE(rest.interrupted);
    EXPECT_EQ(rest.global_step, 12);
    expect_identical(snapshot(resumed.model()), expected);
    // The checkpoint on disk holds the same weights as the model.
    const pth::Value last = pth::read_checkpoint(dir + "/last.pth").root;
    StateDict saved;
    for (const auto& item : last.find("model")->items()) {
      saved.insert(item.first.as_string(), item.second.as_tensor());
    }
    expect_identical(saved, expected);
    // metrics.jsonl: the same epochs, the same train and eval numbers (times differ).
    std::ifstream a(straight_dir + "/metrics.jsonl"), b(dir + "/metrics.jsonl");
    std::string line_a, line_b;
    int rows = 0;
    while (std::getline(a, line_a) && std::getline(b, line_b)) {
      const auto cut = [](const std::string& line) {
        return line.substr(0, line.find("\"epoch_seconds\""));
      };
      EXPECT_EQ(cut(line_b), cut(line_a));
      ++rows;
    }
    EXPECT_EQ(rows, 2);
  }
}

// The run directory holds what the README lists, and the numbered copies are pruned.
TEST(Trainer, RunDirectoryHoldsTheRecord) {
  std::ostringstream log;
  const std::string dir = fresh_dir("record");
  Trainer trainer(tiny_config(dir), log, false);
  trainer.run();
  for (const char* name : {"config.yaml", "classes.txt", "metrics.csv", "metrics.jsonl",
                           "curves.png", "last.pth", "best.pth", "checkpoint-002.pth"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir) / name)) << name;
  }
  EXPECT_FALSE(fs::exists(fs::path(dir) / "checkpoint-001.pth")) << "keep-checkpoints 1";
  const std::string text = log.str();
  EXPECT_NE(text.find("epoch 2/2"), std::string::npos) << text;
  EXPECT_NE(text.find("top-1"), std::string::npos) << text;
  // The same directory again is refused without --resume or --force.
  EXPECT_ERROR_CONTAINS(Trainer(tiny_config(dir), log, false),
                        "already holds a run: continue it with --resume");
  TrainConfig forced = tiny_config(dir);
  forced.force = true;
  forced.epochs = 1;
  EXPECT_NO_THROW(Trainer(forced, log, false));
}

// Gradient accumulation: 4 pieces give the whole batch's gradient (batch norm in eval mode, so
// its statistics do not depend on the piece; float64 so that only rounding differs).
TEST(Trainer, BatchSplitsGiveTheWholeBatchGradient) {
  DenseNetOptions options = preset_options("densenet-bc-100");
  options.block_config({2, 2}).growth_rate(4).num_init_features(8).num_classes(5).input_size(8);
  torch::manual_seed(3);
  DenseNet model(options);
  model->to(torch::kFloat64);
  model->eval();
  const torch::Tensor images = torch::randn({12, 3, 8, 8}, torch::kFloat64);
  const torch::Tensor labels = torch::randint(0, 5, {12}, torch::kInt64);
  const auto gradients = [&](int64_t splits, double smoothing) {
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    const BatchResult result = accumulate_gradients(model, images, labels, splits, smoothing);
    EXPECT_TRUE(result.finite);
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(result, grads);
  };
  for (const double smoothing : {0.0, 0.1}) {
    const auto whole = gradients(1, smoothing);
    const auto split = gradients(4, smoothing);
    EXPECT_NEAR(split.first.loss_sum, whole.first.loss_sum, 1e-12 * whole.first.loss_sum);
    EXPECT_EQ(split.first.correct, whole.first.correct);
    for (size_t i = 0; i < whole.second.size(); ++i) {
      EXPECT_TRUE(testing::tensors_close("gradient " + std::to_string(i), split.second[i],
                                         whole.second[i], 1e-12));
    }
  }
}

// A diverging run stops with the epoch and step named, and the last checkpoint is untouched.
TEST(Trainer, NonFiniteLossStopsWithoutSaving) {
  std::ostringstream log;
  const std::string dir = fresh_dir("nan");
  TrainConfig config = tiny_config(dir);
  config.epochs = 1;
  {
    Trainer good(config, log, false);
    good.run();
  }
  ASSERT_TRUE(std::filesystem::exists(dir + "/last.pth"));
  // Over that run with force: its checkpoints go first, and the diverging run saves nothing.
  TrainConfig bad = config;
  bad.lr = 1e30;
  bad.warmup_epochs = 0;
  bad.force = true;
  Trainer trainer(bad, log, false);
  EXPECT_ERROR_CONTAINS(trainer.run(), "at epoch 1, step ");
  EXPECT_FALSE(std::filesystem::exists(dir + "/last.pth"));
}

TEST(Trainer, ResumeRefusesAnotherArchitectureAndNamesTheKey) {
  std::ostringstream log;
  const std::string dir = fresh_dir("other_arch");
  TrainConfig config = tiny_config(dir);
  config.epochs = 1;
  Trainer(config, log, false).run();
  TrainConfig other = config;
  other.resume = dir;
  other.growth_rate = 8;
  EXPECT_ERROR_CONTAINS(Trainer(other, log, false), "cannot change 'growth-rate' when resuming");
  TrainConfig missing = config;
  missing.resume = dir + "/nothing-here.pth";
  EXPECT_ERROR_CONTAINS(Trainer(missing, log, false), "no such file or directory");
}

StateDict saved_tensors(const std::string& path, const std::string& key) {
  const pth::Value root = pth::read_checkpoint(path).root;
  const pth::Value* dict = root.find(key);
  StateDict tensors;
  if (dict == nullptr) return tensors;
  for (const auto& item : dict->items()) {
    tensors.insert(item.first.as_string(), item.second.as_tensor());
  }
  return tensors;
}

// model-ema: interrupted mid-epoch and resumed, the EMA (state_dict_ema) and its evaluations end
// bit-identical to the uninterrupted run's. The EMA only observes: the trained weights are those
// of the same run without one. best_ema.pth holds the EMA's weights as its model.
TEST(Trainer, ModelEmaResumesBitExactAndOnlyObserves) {
  std::ostringstream log;
  const auto config = [](const std::string& dir, bool ema) {
    TrainConfig c = tiny_config(dir);
    c.model_ema = ema;
    if (ema) c.model_ema_decay = 0.9;  // far from the model's weights after 12 steps
    return c;
  };
  Trainer without(config(fresh_dir("ema_off"), false), log, false);
  without.run();
  const std::string straight_dir = fresh_dir("ema_straight");
  Trainer straight(config(straight_dir, true), log, false);
  straight.run();
  expect_identical(snapshot(straight.model()), snapshot(without.model()));
  const StateDict ema = saved_tensors(straight_dir + "/last.pth", "state_dict_ema");
  ASSERT_EQ(ema.size(), snapshot(straight.model()).size());
  EXPECT_FALSE(ema.find("classifier.weight")->equal(straight.model()->classifier->weight));
  EXPECT_NE(log.str().find("  EMA test loss "), std::string::npos) << log.str();

  const std::string dir = fresh_dir("ema_interrupted");
  {
    clear_stop_request();
    Trainer first(config(dir, true), log, false);
    first.run([&](int64_t step) {
      if (step == 4) request_stop();
    });
    clear_stop_request();
  }
  TrainConfig resumed_config = config(dir, true);
  resumed_config.resume = dir;
  Trainer(resumed_config, log, false).run();
  expect_identical(saved_tensors(dir + "/last.pth", "state_dict_ema"), ema);
  const auto history = [](const std::string& run) {
    return parse_metrics_jsonl(read_file(run + "/metrics.jsonl"), run);
  };
  const auto a = history(straight_dir), b = history(dir);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_FALSE(std::isnan(a[i].ema_eval_top1));
    EXPECT_EQ(b[i].ema_eval_loss, a[i].ema_eval_loss);
    EXPECT_EQ(b[i].ema_eval_top1, a[i].ema_eval_top1);
    EXPECT_EQ(b[i].ema_eval_top5, a[i].ema_eval_top5);
  }
  // best_ema.pth: the EMA of the epoch with the best EMA top-1 (the last here, when it is best).
  const StateDict best = saved_tensors(straight_dir + "/best_ema.pth", "model");
  ASSERT_EQ(best.size(), ema.size());
  if (a[1].ema_eval_top1 > a[0].ema_eval_top1) expect_identical(best, ema);
  EXPECT_EQ(pth::read_checkpoint(straight_dir + "/best_ema.pth").root.find("optimizer"), nullptr);
}

TEST(MemoryChoice, PicksTheFastestModeThatFitsThenSplits) {
  DenseNetOptions options = preset_options("densenet-bc-100");
  options.in_channels(1).num_classes(10).input_size(28);
  const ArchitecturePlan plan = plan_architecture(options);
  const int64_t naive = predicted_step_bytes(plan, MemoryMode::kNaive, 64, 1, 1);
  const int64_t efficient = predicted_step_bytes(plan, MemoryMode::kEfficient, 64, 1, 1);
  const int64_t minimal = predicted_step_bytes(plan, MemoryMode::kMinimal, 64, 1, 1);
  ASSERT_LT(minimal, efficient);
  ASSERT_LT(efficient, naive);
  // CPU order: efficient first.
  EXPECT_EQ(choose_memory(plan, 64, naive * 2, c10::DeviceType::CPU, 1).mode,
            MemoryMode::kEfficient);
  // CUDA order: naive first when it fits.
  EXPECT_EQ(choose_memory(plan, 64, naive * 2, c10::DeviceType::CUDA, 1).mode, MemoryMode::kNaive);
  // Between minimal's and efficient's need: minimal, one piece.
  const MemoryChoice tight =
      choose_memory(plan, 64, (minimal + efficient) / 2, c10::DeviceType::CPU, 1);
  EXPECT_EQ(tight.mode, MemoryMode::kMinimal);
  EXPECT_EQ(tight.num_batch_splits, 1);
  // Below minimal's need: efficient in pieces.
  const MemoryChoice split = choose_memory(plan, 64, minimal - 1, c10::DeviceType::CPU, 1);
  EXPECT_GT(split.num_batch_splits, 1);
  EXPECT_LE(split.predicted_bytes, minimal - 1);
  EXPECT_ERROR_CONTAINS(choose_memory(plan, 64, 1000, c10::DeviceType::CPU, 1),
                        "no memory mode fits batch 64 in");
}

}  // namespace
}  // namespace densenet::train
