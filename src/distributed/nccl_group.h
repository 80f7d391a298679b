#pragma once

// c10d's ProcessGroupNCCL, compiled only where the LibTorch has it (DENSENET_WITH_NCCL: see
// src/distributed/CMakeLists.txt); process_group.cpp holds everything it shares with Gloo.

#include <torch/types.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace densenet::distributed::detail {

/// ProcessGroupNCCL over `store` for rank `rank` of `size`, computing on `device` (CUDA, with
/// its index), which it makes this thread's current device first. Applies nccl_settings (PyTorch's
/// variables where the user set none, the watchdog's timeout, LibTorch's log level) and creates
/// the NCCL communicator at once, with every rank (eagerly, not at the first collective).
/// Throws c10::ValueError as nccl_settings does, c10::Error when NCCL fails.
c10::intrusive_ptr<c10d::Backend> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store,
                                                  int rank, int size,
                                                  std::chrono::milliseconds timeout,
                                                  const torch::Device& device);

}  // namespace densenet::distributed::detail
