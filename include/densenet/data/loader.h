#pragma once

#include "densenet/data/dataset.h"
#include "densenet/data/transforms.h"

#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace densenet::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  int64_t workers = 2;           // decode/augment threads (0 = in the calling thread)
  int64_t prefetch_batches = 4;  // bounded queue of ready batches
  uint64_t seed = 0;
  bool pin_memory = false;  // page-locked batches, for a CUDA device (ignored without CUDA)
  /// Sharding for data-parallel training: each global batch holds batch_size * world_size
  /// samples and rank r gets its r-th part. The permutation is padded by repeating its start
  /// to a multiple of world_size, as torch's DistributedSampler does, so every rank gets the
  /// same number of batches.
  int64_t rank = 0, world_size = 1;
  /// next() returns a batch of no samples (images and labels with size 0 in the first
  /// dimension) where every sample of a batch was unreadable, instead of moving on to the next
  /// batch: the ranks of a data-parallel run must take every step together, so the trainer
  /// decides with the other ranks what to do with such a step.
  bool keep_empty_batches = false;
};

struct Batch {
  torch::Tensor images;  // (N, C, H, W) float32; N < batch_size for the last batch or skips
  torch::Tensor labels;  // (N) int64
  int64_t index = 0;     // batch number within the epoch
};

/// What to save for an exact resume: start_epoch(epoch, next_batch) continues from here.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t next_batch = 0;
};

/// Since start_epoch. Stage times are wall seconds measured inside the workers, summed over
/// them (on a busy machine they include time the worker waited for a core).
struct LoaderStats {
  double wait_seconds = 0.0;  // time next() blocked waiting for a batch (wall)
  int64_t images = 0;         // images delivered
  int64_t skipped = 0;        // unreadable images skipped
  double read_seconds = 0.0, decode_seconds = 0.0, augment_seconds = 0.0, collate_seconds = 0.0;
};

/// Worker threads read, decode and augment whole batches ahead of the consumer into a bounded
/// queue. Batch b of an epoch holds the samples perm[b * B .. (b + 1) * B) of a permutation
/// seeded by (seed, epoch), each augmented with Rng::for_sample(seed, epoch, sample index): its
/// content is a pure function of (dataset, transform, seed, epoch, b), whatever the number of
/// workers. Workers use no ATen parallel ops (their loops are plain C++), so they do not
/// compete with the training step's intra-op threads.
class DataLoader {
 public:
  /// Throws c10::Error for a non-positive batch size, negative workers, prefetch < 1 or a rank
  /// outside [0, world_size).
  DataLoader(std::shared_ptr<const Dataset> dataset, std::shared_ptr<const Transform> transform,
             LoaderOptions options);
  ~DataLoader();  // joins workers cleanly even mid-epoch
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Starts (or restarts) an epoch at batch first_batch; the permutation is seeded by (seed,
  /// epoch).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  /// Blocks; nullopt at the end of the epoch. A worker's failure other than a DataError is
  /// rethrown here as c10::Error.
  std::optional<Batch> next();
  int64_t batches_per_epoch() const;
  LoaderPosition position() const;
  LoaderStats epoch_stats() const;
  const LoaderOptions& options() const { return options_; }

 private:
  struct Slot {
    std::optional<Batch> batch;  // empty when every sample was skipped
    std::exception_ptr error;
    LoaderStats stats;  // this batch's stage times and skips
  };
  Slot build(int64_t batch_index) const;
  void worker_loop();
  /// An (N, C, H, W) float32 tensor for a batch: a pooled one that no batch references any
  /// more, or a new one.
  torch::Tensor batch_buffer(const std::vector<int64_t>& shape) const;
  void stop_workers();

  std::shared_ptr<const Dataset> dataset_;
  std::shared_ptr<const Transform> transform_;
  LoaderOptions options_;

  std::vector<int64_t> order_;  // this rank's sample indices of the epoch, in batch order
  int64_t epoch_ = 0;
  int64_t next_batch_ = 0;  // the batch next() returns next
  LoaderStats stats_;

  mutable std::mutex mutex_;
  std::condition_variable ready_;  // a batch was finished (consumer waits)
  std::condition_variable space_;  // the consumer took a batch or stop (workers wait)
  std::map<int64_t, Slot> done_;   // finished batches not yet taken
  int64_t claim_ = 0;              // next batch index a worker will build
  bool stop_ = false;
  std::vector<std::thread> workers_;

  mutable std::mutex pool_mutex_;
  mutable std::vector<torch::Tensor> pool_;  // batch buffers for reuse, see batch_buffer
};

}  // namespace densenet::data
