#include "densenet/train/training_state.h"

#include <gtest/gtest.h>

#include <cmath>

#include "support/expect_error.h"
#include "support/tensor_compare.h"

namespace densenet::train {
namespace {

TrainingState example_state() {
  TrainingState state;
  state.model.insert("features.conv0.weight", torch::randn({4, 3, 3, 3}));
  state.optimizer = pth::Value::dict();
  state.scaler = pth::Value::dict();
  state.model_ema = StateDict();
  state.model_ema->insert("features.conv0.weight", torch::randn({4, 3, 3, 3}));
  state.epoch = 3;
  state.next_batch = 7;
  state.global_step = 37;
  state.partial = {12.5, 40, 64, 9.75, 0.5, 1.25, 2};
  state.rng = torch::arange(8, torch::kUInt8);
  state.world_size = 2;
  state.best_top1 = 81.25;
  state.best_epoch = 2;
  state.best_ema_top1 = 82.5;
  state.best_ema_epoch = 3;
  state.elapsed_seconds = 123.5;
  EpochRecord record;
  record.epoch = 1;
  record.comm_wait_share = 0.125;
  record.skipped_steps = 3;
  record.ema_eval_top1 = 50;
  state.history = {record};
  state.config_yaml = "epochs: 6\n";
  state.arch = "densenet-bc-40";
  state.lr_type = "cosine";
  state.classes = {"a", "b"};
  state.num_parameters = 108;
  return state;
}

// Every field survives the checkpoint, the epoch's communication time included (a mid-epoch
// resume used to restart it at zero and understate the epoch's comm_wait_share).
TEST(TrainingState, EveryFieldSurvivesTheCheckpoint) {
  const TrainingState saved = example_state();
  const TrainingState read = from_checkpoint(to_checkpoint(saved), "test.pth");
  EXPECT_TRUE(testing::tensors_identical("model", *read.model.find("features.conv0.weight"),
                                         *saved.model.find("features.conv0.weight")));
  ASSERT_TRUE(read.scaler.has_value());
  ASSERT_TRUE(read.model_ema.has_value());
  EXPECT_EQ(read.epoch, 3);
  EXPECT_EQ(read.next_batch, 7);
  EXPECT_EQ(read.global_step, 37);
  EXPECT_EQ(read.partial.loss_sum, 12.5);
  EXPECT_EQ(read.partial.correct, 40);
  EXPECT_EQ(read.partial.images, 64);
  EXPECT_EQ(read.partial.seconds, 9.75);
  EXPECT_EQ(read.partial.wait_seconds, 0.5);
  EXPECT_EQ(read.partial.comm_seconds, 1.25);
  EXPECT_EQ(read.partial.skipped_steps, 2);
  EXPECT_TRUE(torch::equal(read.rng, saved.rng));
  EXPECT_EQ(read.world_size, 2);
  EXPECT_EQ(read.best_top1, 81.25);
  EXPECT_EQ(read.best_epoch, 2);
  EXPECT_EQ(read.best_ema_top1, 82.5);
  EXPECT_EQ(read.best_ema_epoch, 3);
  EXPECT_EQ(read.elapsed_seconds, 123.5);
  ASSERT_EQ(read.history.size(), 1u);
  EXPECT_EQ(read.history[0].comm_wait_share, 0.125);
  EXPECT_EQ(read.history[0].skipped_steps, 3);
  EXPECT_EQ(read.history[0].ema_eval_top1, 50);
  EXPECT_TRUE(std::isnan(read.history[0].loss_scale));
  EXPECT_EQ(read.config_yaml, "epochs: 6\n");
  EXPECT_EQ(read.arch, "densenet-bc-40");
  EXPECT_EQ(read.lr_type, "cosine");
  EXPECT_EQ(read.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read.num_parameters, 108);
}

// A checkpoint of an earlier version lacks the keys added since: they read as their defaults.
TEST(TrainingState, OlderCheckpointsRead) {
  pth::Value root = to_checkpoint(example_state());
  pth::Value partial = *root.find("partial_epoch");
  pth::Value older_partial = pth::Value::dict();
  for (const auto& item : partial.items()) {
    if (item.first.as_string() != "comm_seconds" && item.first.as_string() != "skipped_steps") {
      older_partial.set_item(item.first, item.second);
    }
  }
  pth::Value older = pth::Value::dict();
  for (const auto& item : root.items()) {
    const std::string key = item.first.as_string();
    if (key == "world_size" || key == "scaler" || key.find("ema") != std::string::npos) continue;
    older.set_item(item.first, key == "partial_epoch" ? older_partial : item.second);
  }
  const TrainingState read = from_checkpoint(older, "old.pth");
  EXPECT_EQ(read.partial.comm_seconds, 0);
  EXPECT_EQ(read.partial.skipped_steps, 0);
  EXPECT_EQ(read.world_size, 1);
  EXPECT_FALSE(read.scaler.has_value());
  EXPECT_FALSE(read.model_ema.has_value());
  EXPECT_ERROR_CONTAINS(from_checkpoint(pth::Value::dict(), "plain.pth"),
                        "'plain.pth' is not a densenet training checkpoint: no 'config'");
}

}  // namespace
}  // namespace densenet::train
