#include "densenet/tools/benchmark.h"
#include "densenet/tools/memory_tracker.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace densenet {
namespace {

TEST(MemoryTracker, CountsTensorBytes) {
  MemoryTracker& tracker = MemoryTracker::instance();
  const int64_t before = tracker.current_bytes();
  tracker.reset_peak();
  {
    torch::Tensor t = torch::empty({1024, 256});  // 1 MiB
    EXPECT_EQ(tracker.current_bytes() - before, 1024 * 256 * 4);
  }
  EXPECT_EQ(tracker.current_bytes(), before);
  EXPECT_EQ(tracker.peak_bytes() - before, 1024 * 256 * 4);
}

TEST(MemoryTracker, CapFailsLikeOutOfMemory) {
  MemoryTracker& tracker = MemoryTracker::instance();
  ScopedMemoryLimit cap(tracker.current_bytes() + 1024 * 1024);
  EXPECT_NO_THROW(torch::empty({128, 1024}));
  EXPECT_THROW(torch::empty({1024, 1024}), c10::OutOfMemoryError);
  EXPECT_ERROR_CONTAINS(torch::empty({1024, 1024}), "CPU memory cap exceeded: allocating 4.00 MiB");
}

TEST(MemoryTracker, ScopedCapIsRestored) {
  MemoryTracker& tracker = MemoryTracker::instance();
  const int64_t previous = tracker.limit();
  {
    ScopedMemoryLimit cap(123456789);
    EXPECT_EQ(tracker.limit(), 123456789);
  }
  EXPECT_EQ(tracker.limit(), previous);
}

TEST(MemoryTracker, ByteSizes) {
  EXPECT_EQ(parse_byte_size("4GiB"), 4LL << 30);
  EXPECT_EQ(parse_byte_size("512MiB"), 512LL << 20);
  EXPECT_EQ(parse_byte_size("1.5G"), 3LL << 29);
  EXPECT_EQ(parse_byte_size("1000"), 1000);
  EXPECT_EQ(parse_byte_size("2 GB"), 2000000000);
  EXPECT_ERROR_CONTAINS(parse_byte_size("lots"), "cannot read 'lots' as a size");
  EXPECT_ERROR_CONTAINS(parse_byte_size("4TB"), "unknown size unit 'TB'");
  EXPECT_ERROR_CONTAINS(parse_byte_size("-4G"), "cannot read '-4G' as a size");
  // A stream's >> double read "16EiB" and "8EiB" as 0 (the free memory's share, silently).
  EXPECT_ERROR_CONTAINS(parse_byte_size("16EiB"), "'16EiB' is too large: at most 4 EiB");
  EXPECT_ERROR_CONTAINS(parse_byte_size("8EiB"), "'8EiB' is too large");
  EXPECT_ERROR_CONTAINS(parse_byte_size("1e30"), "'1e30' is too large");
  EXPECT_ERROR_CONTAINS(parse_byte_size("0x10"), "cannot read '0x10' as a size");
  EXPECT_EQ(parse_byte_size("1e3"), 1000);
  EXPECT_EQ(parse_byte_size("2 GiB "), 2LL << 30);
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
}

TEST(MemoryTracker, ProcessRss) {
  EXPECT_GT(process_rss_bytes(), 0);
  EXPECT_GE(process_peak_rss_bytes(), process_rss_bytes());
}

TEST(Benchmark, MaxBatchGrowsWithTheCapAndTheMode) {
  const DenseNetOptions options = DenseNetOptions()
                                      .growth_rate(6)
                                      .block_config({4, 4})
                                      .num_init_features(12)
                                      .bn_size(4)
                                      .compression(0.5)
                                      .num_classes(10)
                                      .input_size(16);
  DenseNetOptions minimal = options;
  minimal.memory(MemoryMode::kMinimal);
  const int64_t cap = 16 << 20;
  const int64_t naive_batch = find_max_batch(options, cap, BenchmarkOptions());
  const int64_t minimal_batch = find_max_batch(minimal, cap, BenchmarkOptions());
  EXPECT_GT(naive_batch, 0);
  EXPECT_GT(minimal_batch, 2 * naive_batch);
  EXPECT_GT(find_max_batch(options, 2 * cap, BenchmarkOptions()), naive_batch);
}

TEST(Benchmark, MeasuresAStep) {
  const DenseNetOptions options = DenseNetOptions()
                                      .growth_rate(6)
                                      .block_config({2, 2})
                                      .num_init_features(12)
                                      .bn_size(4)
                                      .compression(0.5)
                                      .num_classes(10)
                                      .input_size(16);
  const BenchmarkResult r = benchmark_training_step(options, 4, BenchmarkOptions().iterations(1));
  EXPECT_GT(r.forward_ms, 0);
  EXPECT_GT(r.backward_ms, 0);
  EXPECT_GT(r.peak_bytes, 0);
  EXPECT_GT(r.step_flops, 0);
  EXPECT_EQ(r.memory, "naive");
}

}  // namespace
}  // namespace densenet
