#pragma once

#include "densenet/distributed/environment.h"
#include "densenet/distributed/nccl_settings.h"

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace densenet::distributed {

/// The collective backend for `device` and the `dist-backend` choice (auto | gloo | nccl): auto
/// is nccl for a CUDA device, gloo otherwise. Throws c10::ValueError with one line for an
/// unknown name; for nccl where `with_nccl` is false (this build's LibTorch has no
/// ProcessGroupNCCL: Debian's CPU LibTorch) or the device is not CUDA; for gloo with a CUDA
/// device (Gloo here reduces CPU tensors).
std::string choose_backend(const std::string& requested, const torch::Device& device,
                           bool with_nccl);
/// choose_backend(requested, device, nccl_available()).
std::string choose_backend(const std::string& requested, const torch::Device& device);

enum class Reduction { sum, max, min };

/// A c10d process group over all ranks of the run, ProcessGroupGloo (CPU tensors) or
/// ProcessGroupNCCL (CUDA tensors, one GPU per rank), after a rendezvous on a c10d TCPStore at
/// MASTER_ADDR:MASTER_PORT that rank 0 hosts (every rank is a client under torchrun's elastic
/// agent). Collectives must be called in the same order on every rank.
///
/// A failed collective (a rank died, hung past the timeout, or the network failed) throws
/// c10::Error with one line naming the lost ranks where they can be told: every rank keeps a
/// heartbeat counter in the store, and the ranks whose counter stopped are the lost ones (when
/// the store itself is gone or silent for 5 s, rank 0, its host, is). That takes the timeout
/// plus at most 8 s (2-3 s comparing the heartbeats, or 5 s waiting for a silent store). Under
/// NCCL a collective's failure shows on no thread of the caller's (the CPU does not wait for the
/// GPU): NCCL's watchdog finds it and ends the process, which the same line reports first
/// (on_fatal_error).
class ProcessGroup {
 public:
  /// Joins the rendezvous, waiting up to `timeout` for every rank; `timeout` also bounds each
  /// collective. `device`: where the collectives' tensors are, cpu for gloo, a CUDA device with
  /// its index for nccl (cuda:LOCAL_RANK, rank_device in gpus.h), which becomes this thread's
  /// current device. Gloo connects over `interface` (the dist-ifname key) when it is not empty,
  /// else over the interfaces GLOO_SOCKET_IFNAME names, else over this host's resolved name.
  /// Throws c10::ValueError when MASTER_ADDR does not resolve, an interface does not exist
  /// (network.h), a PyTorch NCCL variable is refused (nccl_settings.h) or the device is not
  /// there, c10::Error when the store cannot be hosted (port in use) or reached, or the ranks do
  /// not all arrive in time.
  ProcessGroup(const Environment& environment, std::chrono::milliseconds timeout,
               const std::string& backend = "gloo", const std::string& interface = "",
               const torch::Device& device = torch::kCPU);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  /// Where a failure that no caller can catch is reported: a c10::Error that ends the process
  /// from a thread of its own (std::terminate) while a process group exists, which is how NCCL's
  /// watchdog ends a rank. `report` gets the one line a failed collective throws (the lost ranks
  /// named), then the process exits with status 1. Default: the line on standard error.
  static void on_fatal_error(std::function<void(const std::string& message)> report);

  int64_t rank() const;
  int64_t world_size() const;
  const Environment& environment() const;
  std::chrono::milliseconds timeout() const;
  const std::string& backend() const;
  /// Where the collectives' tensors are: cpu (gloo), cuda:LOCAL_RANK (nccl).
  torch::Device device() const;

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

  /// Starts an in-place sum of `tensor` (contiguous, on device()) over the ranks; `what` names
  /// it in errors ("gradient bucket 3"). The tensor must stay untouched until wait(). NCCL runs
  /// it on its own CUDA stream once the work queued before it on the current stream is done
  /// (its input is ready), and wait() makes the current stream wait for it, as DDP's buckets.
  Work allreduce_async(const torch::Tensor& tensor, const std::string& what);
  /// In-place reduction of `tensor` (contiguous, on device() or on the CPU), blocking: a CPU
  /// tensor holds the result on return (NCCL: through a copy on the GPU); a CUDA one holds it
  /// for the work queued after it on the current stream.
  void allreduce(const torch::Tensor& tensor, Reduction reduction, const std::string& what);
  /// Overwrites `tensor` on every rank with rank `root`'s, blocking as allreduce.
  void broadcast(const torch::Tensor& tensor, int64_t root, const std::string& what);
  /// Returns when every rank has called it.
  void barrier(const std::string& what);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace densenet::distributed
