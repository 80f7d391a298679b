#include "densenet/train/metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "densenet/data/image.h"
#include "densenet/io/atomic_file.h"
#include "support/expect_error.h"

namespace densenet::train {
namespace {

namespace fs = std::filesystem;

// Written by tests/reference/make_train_reference.py (the golden_data fixture).
const std::string kTopk = std::string(DENSENET_GOLDEN_DIR) + "/train/topk.json";

TEST(Metrics, TopkCountsMatchTorchTopkWithTies) {
  std::ifstream in(kTopk);
  ASSERT_TRUE(in) << "cannot read " << kTopk << " (run the golden_data fixture)";
  const auto reference = nlohmann::json::parse(in);
  const auto rows = reference.at("logits").get<std::vector<std::vector<double>>>();
  const int64_t n = static_cast<int64_t>(rows.size()), c = static_cast<int64_t>(rows[0].size());
  torch::Tensor logits = torch::empty({n, c}, torch::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < c; ++j) logits[i][j] = rows[i][j];
  }
  const torch::Tensor labels =
      torch::tensor(reference.at("labels").get<std::vector<int64_t>>(), torch::kLong);
  const auto ks = reference.at("ks").get<std::vector<int64_t>>();
  const auto expected = reference.at("counts").get<std::vector<int64_t>>();
  EXPECT_EQ(count_topk_correct(logits, labels, ks), expected);
  // torch.topk orders ties differently for different k; one k alone is torch.topk(k).
  const auto single = reference.at("counts_single_k").get<std::vector<int64_t>>();
  ASSERT_NE(single, expected) << "the reference should have ties that depend on k";
  for (size_t i = 0; i < ks.size(); ++i) {
    EXPECT_EQ(count_topk_correct(logits, labels, {ks[i]}), std::vector<int64_t>{single[i]})
        << "k = " << ks[i];
  }
  // Non-contiguous logits (a transposed view) count the same.
  EXPECT_EQ(count_topk_correct(logits.t().contiguous().t(), labels, ks), expected);
}

TEST(Metrics, TopkSmallCases) {
  const torch::Tensor logits = torch::tensor({{0.1, 0.7, 0.2}, {0.5, 0.2, 0.3}, {0.2, 0.3, 0.5}});
  const torch::Tensor labels = torch::tensor({1, 2, 0}, torch::kLong);
  // Sample 0 right at k=1; sample 1 (label 2, second) at k=2; sample 2 (label 0, last) at k=3.
  EXPECT_EQ(count_topk_correct(logits, labels, {1, 2, 3, 5}), (std::vector<int64_t>{1, 2, 3, 3}));
  EXPECT_EQ(count_topk_correct(torch::empty({0, 3}), torch::empty({0}, torch::kLong), {1, 5}),
            (std::vector<int64_t>{0, 0}));
}

TEST(Metrics, TopkBadInputIsAClearError) {
  const torch::Tensor logits = torch::zeros({4, 3});
  const torch::Tensor labels = torch::zeros({4}, torch::kLong);
  EXPECT_ERROR_CONTAINS(count_topk_correct(torch::zeros({4}), labels, {1}),
                        "floating-point logits of shape (N, C), got Float of shape [4]");
  EXPECT_ERROR_CONTAINS(count_topk_correct(logits, torch::zeros({4}), {1}),
                        "int64 labels of shape (N) = (4), got Float");
  EXPECT_ERROR_CONTAINS(count_topk_correct(logits, torch::zeros({5}, torch::kLong), {1}),
                        "of shape [5]");
  EXPECT_ERROR_CONTAINS(count_topk_correct(logits, labels, {0}), "k >= 1, got 0");
  EXPECT_ERROR_CONTAINS(count_topk_correct(logits, labels, {}), "at least one k");
  EXPECT_ERROR_CONTAINS(count_topk_correct(logits, torch::tensor({0, 1, 3, 2}, torch::kLong), {1}),
                        "labels must be class indices in [0, 3), got labels from 0 to 3");
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("densenet_metrics_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

EpochRecord record(int64_t epoch, bool evaluated = true) {
  EpochRecord r;
  r.epoch = epoch;
  r.lr = 0.1 / static_cast<double>(epoch);
  r.train_loss = 2.0 / static_cast<double>(epoch);
  r.train_top1 = 50 + 10 * static_cast<double>(epoch);
  if (evaluated) {
    r.eval_loss = 1.9 / static_cast<double>(epoch);
    r.eval_top1 = 52 + 9 * static_cast<double>(epoch);
    r.eval_top5 = 90 + static_cast<double>(epoch);
  }
  r.epoch_seconds = 12.5;
  r.eval_seconds = evaluated ? 1.25 : 0;
  r.images_per_second = 4800;
  r.data_wait_share = 0.01;
  r.elapsed_seconds = 13.75 * static_cast<double>(epoch);
  r.comm_wait_share = 0.25;
  return r;
}

using MetricLoggerTest = TempDir;

TEST_F(MetricLoggerTest, WritesOneRowPerEpochToCsvAndJsonl) {
  MetricLogger logger(dir_.string());
  logger.log(record(1, /*evaluated=*/false));
  EpochRecord scaled = record(2);  // a run with a dynamic loss scale
  scaled.skipped_steps = 3;
  scaled.loss_scale = 32768;
  scaled.ema_eval_loss = 0.875;  // a run with a model EMA
  scaled.ema_eval_top1 = 71.5;
  scaled.ema_eval_top5 = 93;
  logger.log(scaled);
  EXPECT_EQ(read_file(logger.csv_path()),
            "epoch,lr,train_loss,train_top1,eval_loss,eval_top1,eval_top5,epoch_seconds,"
            "eval_seconds,images_per_second,data_wait_share,elapsed_seconds,comm_wait_share,"
            "skipped_steps,loss_scale,ema_eval_loss,ema_eval_top1,ema_eval_top5\n"
            "1,0.1,2,60,,,,12.5,0,4800,0.01,13.75,0.25,0,,,,\n"
            "2,0.05,1,70,0.95,70,92,12.5,1.25,4800,0.01,27.5,0.25,3,32768,0.875,71.5,93\n");
  const std::string jsonl = read_file(logger.jsonl_path());
  EXPECT_NE(jsonl.find("{\"epoch\":1,\"lr\":0.1,\"train_loss\":2.0,\"train_top1\":60.0,"
                       "\"eval_loss\":null,\"eval_top1\":null,\"eval_top5\":null,"),
            std::string::npos)
      << jsonl;
  const auto parsed = parse_metrics_jsonl(jsonl, "metrics.jsonl");
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1].epoch, 2);
  EXPECT_EQ(parsed[1].lr, 0.05);
  EXPECT_EQ(parsed[1].eval_loss, 0.95);
  EXPECT_EQ(parsed[1].elapsed_seconds, 27.5);
  EXPECT_EQ(parsed[1].comm_wait_share, 0.25);
  EXPECT_TRUE(std::isnan(parsed[0].eval_top1));
  EXPECT_EQ(parsed[1].skipped_steps, 3);
  EXPECT_EQ(parsed[1].loss_scale, 32768);
  EXPECT_TRUE(std::isnan(parsed[0].loss_scale));
  EXPECT_EQ(parsed[1].ema_eval_loss, 0.875);
  EXPECT_EQ(parsed[1].ema_eval_top1, 71.5);
  EXPECT_EQ(parsed[1].ema_eval_top5, 93);
  EXPECT_TRUE(std::isnan(parsed[0].ema_eval_top1));
  EXPECT_NE(jsonl.find("\"skipped_steps\":3,\"loss_scale\":32768.0,\"ema_eval_loss\":0.875,"
                       "\"ema_eval_top1\":71.5,\"ema_eval_top5\":93.0}"),
            std::string::npos)
      << jsonl;
  EXPECT_EQ(format_metrics_jsonl(parsed), jsonl);
}

TEST(MetricsJsonl, HistoriesFromBeforeTheLaterColumnsStillParse) {
  // A checkpoint of an older run holds rows without comm_wait_share, skipped_steps,
  // loss_scale and the ema_* columns: they read as 0, 0, NaN (no loss scaling) and NaN (no EMA).
  const auto parsed = parse_metrics_jsonl(
      "{\"epoch\":1,\"lr\":0.1,\"train_loss\":2.0,\"train_top1\":60.0,\"eval_loss\":null,"
      "\"eval_top1\":null,\"eval_top5\":null,\"epoch_seconds\":12.5,\"eval_seconds\":0,"
      "\"images_per_second\":4800,\"data_wait_share\":0.01,\"elapsed_seconds\":13.75}\n",
      "old.jsonl");
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].comm_wait_share, 0.0);
  EXPECT_EQ(parsed[0].skipped_steps, 0);
  EXPECT_TRUE(std::isnan(parsed[0].loss_scale));
  for (const double ema :
       {parsed[0].ema_eval_loss, parsed[0].ema_eval_top1, parsed[0].ema_eval_top5}) {
    EXPECT_TRUE(std::isnan(ema));
  }
  EXPECT_EQ(parsed[0].elapsed_seconds, 13.75);
  EXPECT_ERROR_CONTAINS(parse_metrics_jsonl("{\"epoch\":1}\n", "bad.jsonl"),
                        "bad.jsonl:1: 'lr' is missing or not a number");
}

TEST_F(MetricLoggerTest, NumbersRoundTripExactly) {
  MetricLogger logger(dir_.string());
  EpochRecord r = record(1);
  r.lr = 0.1 * 0.1 * 0.1;  // 0.0010000000000000002: needs 17 digits
  r.train_loss = 1.0 / 3.0;
  logger.log(r);
  EXPECT_NE(read_file(logger.csv_path()).find("\n1,0.0010000000000000002,0.3333333333333333,"),
            std::string::npos);
  const auto parsed = parse_metrics_jsonl(read_file(logger.jsonl_path()), "metrics.jsonl");
  EXPECT_EQ(parsed.at(0).lr, r.lr);
  EXPECT_EQ(parsed.at(0).train_loss, r.train_loss);
}

TEST_F(MetricLoggerTest, RestoreDropsRowsAfterTheCheckpoint) {
  {
    MetricLogger interrupted(dir_.string());
    for (int64_t epoch = 1; epoch <= 4; ++epoch) interrupted.log(record(epoch));
  }
  // The checkpoint had epochs 1-2; the run died after writing rows 3 and 4.
  MetricLogger resumed(dir_.string());
  resumed.restore({record(1), record(2)});
  EXPECT_EQ(parse_metrics_jsonl(read_file(resumed.jsonl_path()), "metrics.jsonl").size(), 2u);
  resumed.log(record(3));
  const auto rows = parse_metrics_jsonl(read_file(resumed.jsonl_path()), "metrics.jsonl");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].epoch, 3);
  const std::string csv = read_file(resumed.csv_path());
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);  // header + 3 rows
  EXPECT_EQ(resumed.history().size(), 3u);
}

TEST_F(MetricLoggerTest, BadUseIsAClearError) {
  MetricLogger logger(dir_.string());
  logger.log(record(2));
  EXPECT_ERROR_CONTAINS(logger.log(record(2)), "metrics: epoch 2 logged after epoch 2");
  MetricLogger nowhere((dir_ / "missing" / "run").string());
  EXPECT_ERROR_CONTAINS(nowhere.log(record(1)), "missing/run/metrics.csv");
  EXPECT_ERROR_CONTAINS(parse_metrics_jsonl("{\"epoch\":1}\nnot json\n", "m.jsonl"),
                        "m.jsonl:1: 'lr' is missing or not a number");
  EXPECT_ERROR_CONTAINS(parse_metrics_jsonl("not json\n", "m.jsonl"),
                        "m.jsonl:1: not a JSON object");
}

/// Pixels within a small distance of `rgb` (anti-aliasing blends the edges of lines).
int64_t pixels_near(const Image& image, int r, int g, int b) {
  int64_t count = 0;
  for (size_t i = 0; i + 2 < image.pixels.size(); i += 3) {
    if (std::abs(image.pixels[i] - r) + std::abs(image.pixels[i + 1] - g) +
            std::abs(image.pixels[i + 2] - b) <
        30) {
      ++count;
    }
  }
  return count;
}

using CurvesTest = TempDir;

TEST_F(CurvesTest, DrawsTrainAndEvalLines) {
  std::vector<EpochRecord> history;
  for (int64_t epoch = 1; epoch <= 12; ++epoch) history.push_back(record(epoch));
  const std::string with_eval = (dir_ / "curves.png").string();
  plot_training_curves(history, with_eval, "densenet-bc fashion-mnist");
  for (auto& r : history) r.eval_loss = r.eval_top1 = r.eval_top5 = NAN;
  const std::string without_eval = (dir_ / "train_only.png").string();
  plot_training_curves(history, without_eval, "train only");

  const Image a = read_image(with_eval), b = read_image(without_eval);
  EXPECT_EQ(a.width, 1200);
  EXPECT_EQ(a.height, 480);
  const int64_t blue_a = pixels_near(a, 31, 120, 181), blue_b = pixels_near(b, 31, 120, 181);
  const int64_t orange_a = pixels_near(a, 255, 128, 13), orange_b = pixels_near(b, 255, 128, 13);
  EXPECT_GT(blue_a, 1000);  // two train lines with markers, and their legend entries
  EXPECT_GT(orange_a, 1000);
  EXPECT_GT(blue_b, 1000);
  // Without evaluation only the legend's orange samples remain.
  EXPECT_LT(orange_b, orange_a / 4);
}

TEST_F(CurvesTest, EdgeCasesDrawAndUnwritablePathIsAnError) {
  plot_training_curves({}, (dir_ / "empty.png").string(), "no epochs yet");
  plot_training_curves({record(1)}, (dir_ / "one.png").string(), "one epoch");
  EpochRecord flat = record(1);
  flat.train_top1 = flat.eval_top1 = flat.eval_top5 = 100;
  flat.train_loss = flat.eval_loss = 0;
  plot_training_curves({flat,
                        [&] {
                          EpochRecord r = flat;
                          r.epoch = 2;
                          return r;
                        }()},
                       (dir_ / "flat.png").string(), "flat");
  for (const char* name : {"empty.png", "one.png", "flat.png"}) {
    EXPECT_EQ(read_image((dir_ / name).string()).width, 1200) << name;
  }
  EXPECT_ERROR_CONTAINS(
      plot_training_curves({record(1)}, (dir_ / "missing" / "c.png").string(), "x"),
      "missing/c.png");
}

}  // namespace
}  // namespace densenet::train
