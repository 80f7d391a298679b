#include "densenet/distributed/replicas.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace densenet::distributed {
namespace {

// Parameters then buffers, with their names, in the module's order (the same on every rank).
std::vector<std::pair<std::string, torch::Tensor>> state_of(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& item : model.named_parameters()) state.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) state.emplace_back(item.key(), item.value());
  return state;
}

}  // namespace

void broadcast_from_rank0(torch::nn::Module& model, ProcessGroup& group) {
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : state_of(model)) {
    const torch::Tensor data = tensor.detach();
    if (data.is_contiguous()) {
      group.broadcast(data, 0, "the broadcast of " + name + " from rank 0");
    } else {
      // Gloo sends only dense row-major tensors; channels-last weights go through a copy.
      torch::Tensor dense = data.contiguous();
      group.broadcast(dense, 0, "the broadcast of " + name + " from rank 0");
      data.copy_(dense);
    }
  }
}

void average_buffers(torch::nn::Module& model, ProcessGroup& group) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> buffers;
  for (const auto& item : model.named_buffers()) {
    if (item.value().is_floating_point()) buffers.push_back(item.value());
  }
  if (buffers.empty()) return;
  std::vector<torch::Tensor> flat_views;
  for (const torch::Tensor& buffer : buffers) flat_views.push_back(buffer.reshape({-1}));
  torch::Tensor flat = torch::cat(flat_views);  // (sum of numels,) every buffer end to end
  group.allreduce(flat, Reduction::sum, "the all-reduce of the batch-norm running statistics");
  flat.div_(static_cast<double>(group.world_size()));
  int64_t offset = 0;
  for (torch::Tensor& buffer : buffers) {
    buffer.copy_(flat.narrow(0, offset, buffer.numel()).view_as(buffer));
    offset += buffer.numel();
  }
}

int64_t check_replicas(torch::nn::Module& model, ProcessGroup& group) {
  torch::NoGradGuard no_grad;
  const auto state = state_of(model);
  // Bit patterns as integers, so that equality is exact (0.0 and -0.0, NaNs, all told apart).
  std::vector<torch::Tensor> bits;
  for (const auto& [name, tensor] : state) {
    const torch::Tensor flat = tensor.detach().reshape({-1}).contiguous();
    if (flat.scalar_type() == torch::kFloat32) {
      bits.push_back(flat.view(torch::kInt32).to(torch::kInt64));
    } else if (flat.scalar_type() == torch::kFloat64) {
      bits.push_back(flat.view(torch::kInt64));
    } else {
      TORCH_CHECK(!flat.is_floating_point(), name, ": cannot compare ", flat.scalar_type());
      bits.push_back(flat.to(torch::kInt64));
    }
  }
  const torch::Tensor local = torch::cat(bits);  // (total,) int64
  torch::Tensor high = local.clone(), low = local.clone();
  group.allreduce(high, Reduction::max, "the replica check");
  group.allreduce(low, Reduction::min, "the replica check");
  int64_t offset = 0;
  for (size_t i = 0; i < state.size(); ++i) {
    const int64_t n = bits[i].numel();
    const bool same = torch::equal(high.narrow(0, offset, n), low.narrow(0, offset, n));
    TORCH_CHECK(same, "the ranks' model replicas differ: ", state[i].first,
                " is not the same on all ", group.world_size(),
                " ranks (a bug: please report it with the command line)");
    offset += n;
  }
  return static_cast<int64_t>(state.size());
}

}  // namespace densenet::distributed
