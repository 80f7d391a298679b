#pragma once

#include "densenet/distributed/process_group.h"

#include <torch/nn/module.h>

#include <cstdint>

namespace densenet::distributed {

// Keeping the model replicas of the ranks equal. Every rank calls these in the same order.

/// Overwrites every parameter and buffer with rank 0's (a fresh start, as DDP's constructor
/// does, or a resumed one). Throws c10::Error as ProcessGroup's collectives do.
void broadcast_from_rank0(torch::nn::Module& model, ProcessGroup& group);

/// Replaces the floating-point buffers (batch-norm running mean and variance) by their mean over
/// the ranks: timm's distribute_bn(reduce=True). Each rank's batch statistics come from its own
/// images; the running averages are linear in them, so averaging after every step gives what
/// averaging once before evaluation would, and keeps the replicas bit-identical.
void average_buffers(torch::nn::Module& model, ProcessGroup& group);

/// Checks that every parameter and buffer holds the same bits on every rank (an all-reduce of
/// the bit patterns' maximum and minimum) and returns how many tensors were compared. Throws
/// c10::Error naming the first tensor that differs.
int64_t check_replicas(torch::nn::Module& model, ProcessGroup& group);

}  // namespace densenet::distributed
