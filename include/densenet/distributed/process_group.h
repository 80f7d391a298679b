#pragma once

#include "densenet/distributed/environment.h"

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace densenet::distributed {

/// The collective backend for `device` and the `dist-backend` choice (auto | gloo | nccl): Gloo
/// for CPU tensors. NCCL (CUDA) would plug in here; this build refuses it with a c10::Error
/// that says so, as it refuses an unknown name.
std::string choose_backend(const std::string& requested, const torch::Device& device);

enum class Reduction { sum, max, min };

/// A c10d process group over all ranks of the run (ProcessGroupGloo), after a rendezvous on a
/// c10d TCPStore at MASTER_ADDR:MASTER_PORT that rank 0 hosts (every rank is a client under
/// torchrun's elastic agent). Collectives must be called in the same order on every rank.
///
/// A failed collective (a rank died, hung past the timeout, or the network failed) throws
/// c10::Error with one line naming the lost ranks where they can be told: every rank keeps a
/// heartbeat counter in the store, and the ranks whose counter stopped are the lost ones (when
/// the store itself is gone or silent for 5 s, rank 0, its host, is). That takes the timeout
/// plus at most 8 s (2-3 s comparing the heartbeats, or 5 s waiting for a silent store).
class ProcessGroup {
 public:
  /// Joins the rendezvous, waiting up to `timeout` for every rank; `timeout` also bounds each
  /// collective. Gloo connects over `interface` (the dist-ifname key) when it is not empty, else
  /// over the interfaces GLOO_SOCKET_IFNAME names, else over this host's resolved name.
  /// Throws c10::ValueError when MASTER_ADDR does not resolve or an interface does not exist
  /// (network.h), c10::Error when the store cannot be hosted (port in use) or reached, or the
  /// ranks do not all arrive in time.
  ProcessGroup(const Environment& environment, std::chrono::milliseconds timeout,
               const std::string& backend = "gloo", const std::string& interface = "");
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const;
  int64_t world_size() const;
  const Environment& environment() const;
  std::chrono::milliseconds timeout() const;

  /// An asynchronous collective in flight; wait() returns when its result is in the tensor.
  class Work {
   public:
    Work();
    ~Work();
    Work(Work&&) noexcept;
    Work& operator=(Work&&) noexcept;
    /// Throws c10::Error as the blocking collectives do. Waiting twice is a no-op.
    void wait();

   private:
    friend class ProcessGroup;
    struct State;
    std::unique_ptr<State> state_;
  };

  /// Starts an in-place sum of `tensor` (contiguous, CPU for Gloo) over the ranks; `what` names
  /// it in errors ("gradient bucket 3"). The tensor must stay untouched until wait().
  Work allreduce_async(const torch::Tensor& tensor, const std::string& what);
  /// In-place reduction, blocking.
  void allreduce(const torch::Tensor& tensor, Reduction reduction, const std::string& what);
  /// Overwrites `tensor` on every rank with rank `root`'s, blocking.
  void broadcast(const torch::Tensor& tensor, int64_t root, const std::string& what);
  /// Returns when every rank has called it.
  void barrier(const std::string& what);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace densenet::distributed
