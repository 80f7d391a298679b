#include "distributed/nccl_group.h"

#include "densenet/distributed/nccl_settings.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstdlib>

namespace densenet::distributed::detail {

c10::intrusive_ptr<c10d::Backend> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store,
                                                  int rank, int size,
                                                  std::chrono::milliseconds timeout,
                                                  const torch::Device& device) {
  TORCH_INTERNAL_ASSERT(device.is_cuda() && device.has_index());
  const NcclSettings settings =
      nccl_settings(timeout, [](const char* name) { return std::getenv(name); });
  // ProcessGroupNCCL reads them in its constructor. No other thread of the rank runs yet.
  for (const auto& [name, value] : settings.variables) {
    setenv(name.c_str(), value.c_str(), /*overwrite=*/0);
  }
  if (settings.quiet_log) {
    FLAGS_caffe2_log_level = c10::GLOG_FATAL;
  } else {
    c10::initLogging();  // TORCH_CPP_LOG_LEVEL, as Python's torch reads it at import
  }
  // Before the communicator, and before the model is built: NCCL's stream, its communicator and
  // the caching allocator's blocks belong to the current device.
  c10::cuda::set_device(device.index());
  c10::intrusive_ptr<c10d::ProcessGroupNCCL::Options> options =
      c10d::ProcessGroupNCCL::Options::create();
  options->timeout = settings.timeout;
  auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
  // As init_process_group(device_id=...): barrier() and the communicator use this device, and
  // the communicator is made now, so that a rank that cannot join fails here, as Gloo's do.
  group->setBoundDeviceId(device);
  group->eagerConnectSingleDevice(device);
  return group;
}

}  // namespace densenet::distributed::detail
