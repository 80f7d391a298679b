#include "densenet/distributed/gpus.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace densenet::distributed {
namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  std::string part;
  while (std::getline(in, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();  // "0," has an empty entry
  return parts;
}

}  // namespace

std::vector<int64_t> parse_gpus(const std::string& list) {
  const std::string usage = "--gpus '" + list + "': ";
  const std::string example = ": give GPU indices separated by commas, e.g. --gpus 0,1,2,3";
  TORCH_CHECK_VALUE(!list.empty(), usage, "no GPU", example);
  std::vector<int64_t> gpus;
  for (const std::string& entry : split(list, ',')) {
    const bool digits =
        !entry.empty() && entry.size() <= 4 &&
        std::all_of(entry.begin(), entry.end(), [](char c) { return c >= '0' && c <= '9'; });
    TORCH_CHECK_VALUE(digits, usage, "'", entry, "' is not a GPU index", example);
    const int64_t index = std::stoll(entry);
    TORCH_CHECK_VALUE(std::find(gpus.begin(), gpus.end(), index) == gpus.end(), usage, "GPU ",
                      index, " is listed twice: each GPU runs one rank");
    gpus.push_back(index);
  }
  return gpus;
}

std::string visible_devices_for(const std::vector<int64_t>& gpus, int64_t device_count,
                                const char* visible) {
  const std::vector<std::string> entries =
      visible != nullptr ? split(visible, ',') : std::vector<std::string>();
  std::string list;
  for (const int64_t index : gpus) {
    const std::string shown =
        visible != nullptr ? " (CUDA_VISIBLE_DEVICES=" + std::string(visible) + ")" : "";
    TORCH_CHECK_VALUE(device_count > 0, "--gpus: no CUDA device is available to this program",
                      shown, ": it needs a GPU and a LibTorch built with CUDA");
    TORCH_CHECK_VALUE(index < device_count, "--gpus: GPU ", index,
                      " is not available: ", device_count,
                      device_count == 1 ? " CUDA device is" : " CUDA devices are", " visible",
                      shown, ", numbered from 0");
    const std::string name = static_cast<size_t>(index) < entries.size()
                                 ? entries[static_cast<size_t>(index)]
                                 : std::to_string(index);
    list += (list.empty() ? "" : ",") + name;
  }
  return list;
}

void check_gpu_count(int64_t local_ranks, int64_t device_count) {
  TORCH_CHECK_VALUE(local_ranks <= device_count, "device cuda: ", local_ranks,
                    " ranks on this machine compute on cuda:0 to cuda:", local_ranks - 1, ", but ",
                    device_count, device_count == 1 ? " CUDA device is" : " CUDA devices are",
                    " visible: start fewer ranks, or choose GPUs with --gpus");
}

torch::Device rank_device(const std::string& device, const Environment& environment) {
  const torch::Device given(device);
  if (!given.is_cuda() || !environment.distributed()) return given;
  if (!given.has_index()) {
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(environment.local_rank));
  }
  TORCH_CHECK_VALUE(environment.local_world_size == 1, "device ", device, ": the ",
                    environment.local_world_size,
                    " ranks of this machine would share that GPU (NCCL refuses it): use device "
                    "cuda (rank r computes on cuda:LOCAL_RANK), or --gpus");
  return given;
}

}  // namespace densenet::distributed
