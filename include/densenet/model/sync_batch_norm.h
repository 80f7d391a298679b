#pragma once

// Synchronised batch normalisation (sync-bn) for data-parallel training: every batch norm of a
// DenseNet in training mode normalises with the mean and variance of the global batch (all
// replicas together) instead of its replica's share, as torch.nn.SyncBatchNorm does, so that
// results do not depend on how many replicas split the batch.

#include <torch/types.h>

#include <functional>

namespace densenet {

/// Sums `sums` over the replicas of a data-parallel run, in place: what sync-bn needs from a
/// communication library (the trainer passes c10d's all-reduce). `sums` is a contiguous 1-D
/// double tensor on the statistics' device: per-channel sums and the replica's value count.
/// It is called in the same order on every replica (once per batch norm in forward, once per
/// batch norm in backward) and returns when `sums` holds the sum over all replicas. Errors
/// (a lost replica) propagate as exceptions out of forward or backward.
using BatchNormAllReduce = std::function<void(torch::Tensor& sums)>;

}  // namespace densenet
