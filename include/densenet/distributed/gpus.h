#pragma once

#include "densenet/distributed/environment.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace densenet::distributed {

// Which GPU each rank computes on. PyTorch's convention, which these follow: every rank of a
// machine sees the same GPUs (CUDA_VISIBLE_DEVICES) and local rank r computes on cuda:r
// (torch.cuda.set_device(LOCAL_RANK) under torchrun).

/// `--gpus 0,1,2,3` (the original project's flag): the GPU indices, in order. Throws
/// c10::ValueError with one line naming the list for an empty list or entry, an entry that is
/// not a whole number >= 0, or an index listed twice.
std::vector<int64_t> parse_gpus(const std::string& list);

/// The CUDA_VISIBLE_DEVICES that the launcher gives every rank of `--gpus`: the listed GPUs in
/// their order, so that local rank r computes on cuda:r, the r-th listed GPU (as
/// `CUDA_VISIBLE_DEVICES=2,3 torchrun --nproc-per-node 2 ...` does). The indices count the GPUs
/// this process sees: under its own CUDA_VISIBLE_DEVICES (`visible`, nullptr when unset) index i
/// is that list's i-th entry. Throws c10::ValueError naming the first index that is not below
/// `device_count` (the CUDA devices this process sees; 0 without a GPU or a CUDA LibTorch).
std::string visible_devices_for(const std::vector<int64_t>& gpus, int64_t device_count,
                                const char* visible);

/// Refuses (c10::ValueError) `local_ranks` ranks with device cuda on a machine that shows fewer
/// than `local_ranks` CUDA devices (`device_count`): rank r would compute on cuda:r.
void check_gpu_count(int64_t local_ranks, int64_t device_count);

/// The device a process computes on for the `device` key ("cpu", "cuda", "cuda:N"): in a
/// data-parallel run (environment.distributed()) `cuda` is cuda:LOCAL_RANK; `cuda:N` is kept
/// where one rank runs per machine and refused (c10::ValueError) where LOCAL_WORLD_SIZE > 1,
/// since the ranks would share a GPU, which NCCL refuses. Otherwise the device as given.
torch::Device rank_device(const std::string& device, const Environment& environment);

}  // namespace densenet::distributed
