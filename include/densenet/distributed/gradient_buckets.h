#pragma once

#include "densenet/distributed/process_group.h"

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace densenet::distributed {

/// Averages gradients over the ranks as PyTorch's DistributedDataParallel does: parameters are
/// grouped, in reverse order (the order backward produces their gradients), into flat buckets
/// of about `bucket_bytes`; a hook on each parameter copies its gradient into its bucket, and a
/// bucket's all-reduce starts as soon as the bucket is full, while backward goes on computing
/// the gradients of earlier layers. Buckets start in a fixed order on every rank (bucket i
/// waits for bucket i - 1), as collectives must. Under NCCL the all-reduces run on NCCL's own
/// CUDA stream, each after the copies into its bucket on the gradients' stream (c10d orders
/// them), while backward's kernels go on.
///
/// Only an armed backward reduces: with gradient accumulation (num-batch-splits) the pieces
/// before the last only accumulate, and arm() is called before the last piece's backward. The
/// bucket then holds the accumulated gradient (what .grad held before, plus the new one).
class GradientBuckets {
 public:
  /// `parameters`: the model's, in registration order, float32 on the group's device (cpu for
  /// Gloo, cuda:LOCAL_RANK for NCCL), all used by every forward.
  /// `bucket_bytes` >= 1: a parameter larger than that has a bucket of its own.
  GradientBuckets(std::vector<torch::Tensor> parameters, std::shared_ptr<ProcessGroup> group,
                  int64_t bucket_bytes = int64_t{25} << 20);
  ~GradientBuckets();  // the hooks stay on the parameters but do nothing any more
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  /// The next backward reduces.
  void arm();
  /// After the armed backward: waits for every bucket's all-reduce and overwrites each .grad
  /// with the mean over the ranks. Returns the seconds spent waiting (communication that
  /// backward did not hide; under NCCL the CPU does not wait: the current CUDA stream does, and
  /// the copies into .grad are queued after it, so the seconds are about 0). Throws c10::Error
  /// when a parameter got no gradient, or as ProcessGroup's collectives do.
  double finish();

  int64_t num_buckets() const;
  /// Elements of bucket `i` (bucket 0 holds the last parameters).
  int64_t bucket_numel(int64_t i) const;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace densenet::distributed
