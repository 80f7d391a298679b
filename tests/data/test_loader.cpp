// The loader: batch order and content independent of the worker count, epoch-seeded shuffling,
// exact resume from a saved position, skipped corrupt files, and worker failures surfacing as
// errors.

#include "data/data_dir.h"
#include "data/jpeg_region.h"
#include "densenet/data/image.h"
#include "densenet/data/loader.h"
#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

namespace densenet::data {
namespace {

/// Sample i is an image filled with i % 256 and label i, so batches show which samples they
/// hold; `fail_at` throws a plain exception (a bug, not a bad file) and `bad_at` a DataError.
class IndexDataset : public Dataset {
 public:
  explicit IndexDataset(int64_t n, int64_t fail_at = -1, int64_t bad_at = -1)
      : n_(n), fail_at_(fail_at), bad_at_(bad_at) {}
  int64_t size() const override { return n_; }
  RawSample get(int64_t index) const override {
    if (index == fail_at_) throw std::logic_error("index dataset bug at " + std::to_string(index));
    if (index == bad_at_) throw DataError("sample" + std::to_string(index) + ".jpg", "corrupt");
    return {torch::full({12, 12, 3}, index % 256, torch::kUInt8), index};
  }
  const std::vector<std::string>& classes() const override { return classes_; }
  int64_t channels() const override { return 3; }
  std::string describe() const override { return "index"; }

 private:
  int64_t n_, fail_at_, bad_at_;
  std::vector<std::string> classes_{"any"};
};

std::vector<Batch> epoch(DataLoader& loader, int64_t number, int64_t first = 0) {
  loader.start_epoch(number, first);
  std::vector<Batch> out;
  while (auto batch = loader.next()) out.push_back(std::move(*batch));
  return out;
}

std::shared_ptr<const Dataset> synthetic(int64_t n) {
  DatasetOptions options;
  options.name = "synthetic";
  options.synthetic_size = n;
  options.synthetic_image_size = 20;
  return open_dataset(options, Split::Train);
}

TEST(Loader, SameBatchesWithAnyWorkerCount) {
  const auto dataset = synthetic(70);
  const auto transform = make_train_transform("synthetic", 16, {{0.5}, {0.25}});
  std::vector<std::vector<Batch>> runs;
  for (const int64_t workers : {0, 1, 2, 4}) {
    LoaderOptions options;
    options.batch_size = 8;
    options.workers = workers;
    options.prefetch_batches = 2;
    options.seed = 11;
    DataLoader loader(dataset, transform, options);
    runs.push_back(epoch(loader, 3));
  }
  ASSERT_EQ(runs[0].size(), 9u);  // 70 / 8, last batch of 6
  EXPECT_EQ(runs[0].back().images.size(0), 6);
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t b = 0; b < runs[0].size(); ++b) {
      const std::string name = "run " + std::to_string(r) + " batch " + std::to_string(b);
      EXPECT_EQ(runs[r][b].index, static_cast<int64_t>(b));
      EXPECT_TRUE(densenet::testing::tensors_identical(name + " images", runs[r][b].images,
                                                       runs[0][b].images));
      EXPECT_TRUE(densenet::testing::tensors_identical(name + " labels", runs[r][b].labels,
                                                       runs[0][b].labels));
    }
  }
}

TEST(Loader, ShufflesByEpochAndCoversEverySampleOnce) {
  LoaderOptions options;
  options.batch_size = 7;
  options.seed = 5;
  DataLoader loader(std::make_shared<IndexDataset>(50),
                    make_eval_transform("synthetic", 12, {{0.0}, {1.0}}), options);
  const auto labels_of = [](const std::vector<Batch>& batches) {
    std::vector<int64_t> all;
    for (const auto& b : batches) {
      for (int64_t i = 0; i < b.labels.size(0); ++i) all.push_back(b.labels[i].item<int64_t>());
    }
    return all;
  };
  const auto e0 = labels_of(epoch(loader, 0));
  const auto e0_again = labels_of(epoch(loader, 0));
  const auto e1 = labels_of(epoch(loader, 1));
  EXPECT_EQ(e0, e0_again);
  EXPECT_NE(e0, e1);
  auto sorted = e1;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) ASSERT_EQ(sorted[i], i);
  options.shuffle = false;
  options.drop_last = true;
  DataLoader ordered(std::make_shared<IndexDataset>(50),
                     make_eval_transform("synthetic", 12, {{0.0}, {1.0}}), options);
  EXPECT_EQ(ordered.batches_per_epoch(), 7);
  const auto in_order = labels_of(epoch(ordered, 4));
  ASSERT_EQ(in_order.size(), 49u);
  for (int64_t i = 0; i < 49; ++i) EXPECT_EQ(in_order[i], i);
}

TEST(Loader, ResumesFromASavedPosition) {
  const auto dataset = synthetic(64);
  const auto transform = make_train_transform("synthetic", 16, {{0.5}, {0.25}});
  LoaderOptions options;
  options.batch_size = 8;
  options.workers = 2;
  options.seed = 42;
  DataLoader first(dataset, transform, options);
  first.start_epoch(2);
  std::vector<Batch> seen;
  for (int i = 0; i < 3; ++i) seen.push_back(*first.next());
  const LoaderPosition saved = first.position();
  EXPECT_EQ(saved.epoch, 2);
  EXPECT_EQ(saved.next_batch, 3);
  std::vector<Batch> rest;
  while (auto b = first.next()) rest.push_back(std::move(*b));
  EXPECT_EQ(first.epoch_stats().images, 64);

  options.workers = 4;  // a resumed run may use another worker count
  DataLoader resumed(dataset, transform, options);
  const auto again = epoch(resumed, saved.epoch, saved.next_batch);
  ASSERT_EQ(again.size(), rest.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(again[i].index, rest[i].index);
    EXPECT_TRUE(densenet::testing::tensors_identical("resumed batch " + std::to_string(i),
                                                     again[i].images, rest[i].images));
    EXPECT_TRUE(torch::equal(again[i].labels, rest[i].labels));
  }
  EXPECT_ERROR_CONTAINS(resumed.start_epoch(0, 9), "cannot start epoch 0 at batch 9: it has 8");
}

TEST(Loader, SkipsAndCountsCorruptImages) {
  LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  DataLoader loader(std::make_shared<IndexDataset>(10, -1, 5),
                    make_eval_transform("synthetic", 12, {{0.0}, {1.0}}), options);
  const auto batches = epoch(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[1].images.size(0), 3);  // samples 4, 6, 7
  EXPECT_EQ(batches[1].labels[1].item<int64_t>(), 6);
  EXPECT_EQ(loader.epoch_stats().skipped, 1);
  EXPECT_EQ(loader.epoch_stats().images, 9);
}

TEST(Loader, SkipsTheCorruptFileOfAnImageFolder) {
  DatasetOptions folder;
  folder.name = "imagefolder";
  folder.root = densenet::testing::data_dir() + "/folder";
  const auto dataset = open_dataset(folder, Split::Train);
  LoaderOptions options;
  options.batch_size = 5;
  options.workers = 2;
  DataLoader loader(dataset,
                    make_eval_transform("imagefolder", 32, default_normalization("imagefolder")),
                    options);
  const auto batches = epoch(loader, 0);
  EXPECT_EQ(loader.epoch_stats().skipped, 1);
  EXPECT_EQ(loader.epoch_stats().images, dataset->size() - 1);
  EXPECT_GT(loader.epoch_stats().decode_seconds, 0.0);
}

TEST(Loader, WorkerFailureSurfacesAsError) {
  for (const int64_t workers : {0, 2}) {
    LoaderOptions options;
    options.batch_size = 4;
    options.shuffle = false;
    options.workers = workers;
    DataLoader loader(std::make_shared<IndexDataset>(20, 9),
                      make_eval_transform("synthetic", 12, {{0.0}, {1.0}}), options);
    EXPECT_TRUE(loader.next().has_value());
    EXPECT_TRUE(loader.next().has_value());
    EXPECT_ERROR_CONTAINS(loader.next(), "batch 2 of epoch 0 failed: index dataset bug at 9");
  }
}

TEST(Loader, StopsCleanlyMidEpochAndChecksOptions) {
  {
    LoaderOptions options;
    options.batch_size = 2;
    options.workers = 4;
    options.prefetch_batches = 1;
    DataLoader loader(synthetic(100), make_train_transform("synthetic", 16, {{0.5}, {0.25}}),
                      options);
    EXPECT_TRUE(loader.next().has_value());
  }  // destroyed with workers waiting on a full queue: must join, not hang or crash
  LoaderOptions bad;
  bad.batch_size = 0;
  EXPECT_ERROR_CONTAINS(
      DataLoader(synthetic(4), make_eval_transform("synthetic", 20, {{0.5}, {0.25}}), bad),
      "batch size must be >= 1, got 0");
}

TEST(Loader, ShardsGlobalBatchesAcrossRanks) {
  // 2 ranks x batch 3: global batch g holds perm[6g .. 6g + 6); rank r takes its r-th half.
  std::vector<std::vector<int64_t>> per_rank(2);
  for (int64_t rank = 0; rank < 2; ++rank) {
    LoaderOptions options;
    options.batch_size = 3;
    options.rank = rank;
    options.world_size = 2;
    options.seed = 1;
    DataLoader loader(std::make_shared<IndexDataset>(11),
                      make_eval_transform("synthetic", 12, {{0.0}, {1.0}}), options);
    EXPECT_EQ(loader.batches_per_epoch(), 2);  // 11 padded to 12 = 2 global batches of 6
    for (const auto& b : epoch(loader, 0)) {
      for (int64_t i = 0; i < b.labels.size(0); ++i)
        per_rank[rank].push_back(b.labels[i].item<int64_t>());
    }
  }
  const std::vector<int64_t> perm = permutation(11, 1, 0);
  const std::vector<int64_t> want0 = {perm[0], perm[1], perm[2], perm[6], perm[7], perm[8]};
  const std::vector<int64_t> want1 = {perm[3], perm[4], perm[5], perm[9], perm[10], perm[0]};
  EXPECT_EQ(per_rank[0], want0);
  EXPECT_EQ(per_rank[1], want1);
}

}  // namespace
}  // namespace densenet::data

namespace densenet::data {
namespace {

/// An image folder that hands out pixels only, so that transforms decode whole images.
class PixelsOnly : public Dataset {
 public:
  explicit PixelsOnly(std::shared_ptr<const Dataset> base) : base_(std::move(base)) {}
  int64_t size() const override { return base_->size(); }
  RawSample get(int64_t index) const override { return base_->get(index); }
  const std::vector<std::string>& classes() const override { return base_->classes(); }
  int64_t channels() const override { return base_->channels(); }
  std::string describe() const override { return base_->describe(); }

 private:
  std::shared_ptr<const Dataset> base_;
};

TEST(PartialDecode, BoxesMatchTheFullDecode) {
  const std::string dir = densenet::testing::data_dir() + "/jpegs/";
  for (const std::string name : {"s444.jpg", "s422.jpg", "s420.jpg", "gray.jpg"}) {
    std::ifstream stream(dir + name, std::ios::binary);
    std::stringstream contents;
    contents << stream.rdbuf();
    const std::string bytes = contents.str();
    const Image whole = decode_image(bytes, name);
    Rng rng(17);
    for (int i = 0; i < 200; ++i) {
      CropBox chosen;
      const std::optional<Image> part =
          decode_jpeg_box(bytes, name, [&](int64_t height, int64_t width) {
            EXPECT_EQ(height, whole.height);
            EXPECT_EQ(width, whole.width);
            chosen.height = rng.integer(1, height);
            chosen.width = rng.integer(1, width);
            chosen.top = rng.integer(0, height - chosen.height);
            chosen.left = rng.integer(0, width - chosen.width);
            return chosen;
          });
      ASSERT_TRUE(part.has_value()) << name;
      const torch::Tensor expected =
          torch::from_blob(const_cast<uint8_t*>(whole.pixels.data()),
                           {whole.height, whole.width, whole.channels}, torch::kUInt8)
              .narrow(0, chosen.top, chosen.height)
              .narrow(1, chosen.left, chosen.width)
              .contiguous();
      ASSERT_TRUE(torch::equal(to_tensor(*part), expected))
          << name << " box top " << chosen.top << " left " << chosen.left << " " << chosen.height
          << "x" << chosen.width;
    }
  }
  EXPECT_FALSE(decode_jpeg_box("\x89PNG....", "x.png", [](int64_t, int64_t) {
                 ADD_FAILURE() << "choose called for a PNG";
                 return CropBox{};
               }).has_value());
}

TEST(PartialDecode, LoaderBatchesEqualWholeImageDecoding) {
  DatasetOptions folder;
  folder.name = "imagefolder";
  folder.root = densenet::testing::data_dir() + "/folder";
  const auto files = open_dataset(folder, Split::Train);
  const auto transform = make_train_transform(
      "imagefolder", 48, default_normalization("imagefolder"), {0.3, 0.3, 0.3, 0.1});
  LoaderOptions options;
  options.batch_size = 4;
  options.workers = 2;
  options.seed = 3;
  DataLoader partial(files, transform, options);
  DataLoader whole(std::make_shared<PixelsOnly>(files), transform, options);
  for (const int64_t e : {0, 1}) {
    const auto a = epoch(partial, e);
    const auto b = epoch(whole, e);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(densenet::testing::tensors_identical(
          "epoch " + std::to_string(e) + " batch " + std::to_string(i), a[i].images, b[i].images));
      EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels));
    }
    EXPECT_EQ(partial.epoch_stats().skipped, 1);
    EXPECT_EQ(whole.epoch_stats().skipped, 1);
  }
}

}  // namespace
}  // namespace densenet::data
