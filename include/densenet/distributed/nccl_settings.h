#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace densenet::distributed {

/// Whether this build's LibTorch has c10d's ProcessGroupNCCL (pip's CUDA LibTorch 2.x; not
/// Debian's CPU LibTorch 1.13): the CMake check that defines DENSENET_WITH_NCCL.
bool nccl_available();

/// How a rank sets up c10d's ProcessGroupNCCL for a run (src/distributed/nccl_group.cpp applies
/// it). Kept apart from the NCCL code so that it is tested on machines without a GPU.
///
/// A lost or hung rank ends the others through NCCL's asynchronous error handling: the group's
/// watchdog thread fails a collective that is not done `timeout` after it was queued (or that
/// NCCL reports broken) and, with TORCH_NCCL_ASYNC_ERROR_HANDLING 1 or 3, ends the process from
/// that thread; the process group reports it in one line first (ProcessGroup::on_fatal_error).
struct NcclSettings {
  /// ProcessGroupNCCL::Options::timeout, the watchdog's limit for one collective: dist-timeout.
  std::chrono::milliseconds timeout{0};
  /// PyTorch's variables that ProcessGroupNCCL reads when it is created, to set where the user
  /// has not: TORCH_NCCL_ASYNC_ERROR_HANDLING=3 (PyTorch's default, made explicit: the watchdog
  /// ends the process), TORCH_NCCL_DUMP_ON_TIMEOUT=0 and TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC=250
  /// (no flight-recorder files, and the watchdog waits 4 x 250 ms instead of a minute for other
  /// ranks' dumps before it ends the process).
  std::vector<std::pair<std::string, std::string>> variables;
  /// LibTorch's log is silenced below FATAL: the watchdog writes several lines before it ends a
  /// rank, and the rank's error is one line. False when TORCH_CPP_LOG_LEVEL is set, which the
  /// rank then honours (c10::initLogging).
  bool quiet_log = true;
};

/// The settings for dist-timeout `timeout`, with the environment read through `lookup`
/// (getenv's contract). Throws c10::ValueError with one line when TORCH_NCCL_ASYNC_ERROR_HANDLING
/// (or its old name NCCL_ASYNC_ERROR_HANDLING) is set to anything but 1 or 3: 0 leaves a rank
/// waiting for a lost one past dist-timeout, 2 lets it go on with aborted communicators.
NcclSettings nccl_settings(std::chrono::milliseconds timeout,
                           const std::function<const char*(const char*)>& lookup);

}  // namespace densenet::distributed
