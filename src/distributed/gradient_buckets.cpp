#include "densenet/distributed/gradient_buckets.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <string>

namespace densenet::distributed {

struct GradientBuckets::Shared {
  struct Bucket {
    torch::Tensor flat;  // (numel,) float32 on the group's device: its gradients, end to end
    std::vector<int64_t> params;  // indices into `parameters`, in the order they are laid out
    int64_t pending = 0;          // gradients not yet copied in during this backward
    ProcessGroup::Work work;
  };
  std::vector<torch::Tensor> parameters;
  std::shared_ptr<ProcessGroup> group;
  std::vector<Bucket> buckets;
  std::vector<int64_t> bucket_of, offset_of;  // per parameter: its bucket, its first element
  std::vector<char> received;                 // per parameter: copied in during this backward
  bool armed = false;
  int64_t next_launch = 0;  // the bucket whose all-reduce starts next

  void on_gradient(int64_t index, const torch::Tensor& grad) {
    if (!armed) return;
    const auto i = static_cast<size_t>(index);
    TORCH_INTERNAL_ASSERT(!received[i], "parameter ", index, " got two gradients in a backward");
    received[i] = 1;
    Bucket& bucket = buckets[static_cast<size_t>(bucket_of[i])];
    const torch::Tensor& parameter = parameters[i];
    torch::Tensor slot = bucket.flat.narrow(0, offset_of[i], parameter.numel()).view_as(parameter);
    torch::NoGradGuard no_grad;
    // On CUDA, on the current stream of the autograd thread: the stream that produced `grad`
    // (the engine's stream for this parameter), which the bucket's NCCL all-reduce then waits for.
    slot.copy_(grad);
    // AccumulateGrad adds `grad` to .grad after this hook: the bucket takes the sum it will make.
    if (parameter.grad().defined()) slot.add_(parameter.grad());
    if (--bucket.pending == 0) launch_ready();
  }

  void launch_ready() {
    while (next_launch < static_cast<int64_t>(buckets.size()) &&
           buckets[static_cast<size_t>(next_launch)].pending == 0) {
      Bucket& bucket = buckets[static_cast<size_t>(next_launch)];
      bucket.work = group->allreduce_async(
          bucket.flat, "the all-reduce of gradient bucket " + std::to_string(next_launch));
      ++next_launch;
    }
  }
};

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> parameters,
                                 std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes)
    : shared_(std::make_shared<Shared>()) {
  TORCH_CHECK(bucket_bytes >= 1, "gradient bucket size must be >= 1 byte, got ", bucket_bytes);
  TORCH_CHECK(group != nullptr, "gradient buckets need a process group");
  Shared& s = *shared_;
  s.parameters = std::move(parameters);
  s.group = std::move(group);
  const torch::Device device = s.group->device();
  const size_t n = s.parameters.size();
  s.bucket_of.assign(n, 0);
  s.offset_of.assign(n, 0);
  s.received.assign(n, 0);
  int64_t bytes = 0;
  for (size_t k = n; k-- > 0;) {
    const torch::Tensor& parameter = s.parameters[k];
    TORCH_CHECK(parameter.scalar_type() == torch::kFloat32 && parameter.device() == device,
                "gradient buckets hold float32 parameters on the process group's device (", device,
                "), parameter ", k, " is ", parameter.scalar_type(), " on ", parameter.device());
    const int64_t size = parameter.numel() * static_cast<int64_t>(sizeof(float));
    if (s.buckets.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    Shared::Bucket& bucket = s.buckets.back();
    s.bucket_of[k] = static_cast<int64_t>(s.buckets.size()) - 1;
    s.offset_of[k] = bytes / static_cast<int64_t>(sizeof(float));
    bucket.params.push_back(static_cast<int64_t>(k));
    bytes += size;
  }
  for (Shared::Bucket& bucket : s.buckets) {
    int64_t numel = 0;
    for (const int64_t k : bucket.params) numel += s.parameters[static_cast<size_t>(k)].numel();
    bucket.flat = torch::zeros({numel}, torch::dtype(torch::kFloat32).device(device));
  }
  // The hooks hold the shared state weakly: a model outliving its trainer keeps working.
  const std::weak_ptr<Shared> weak = shared_;
  for (size_t k = 0; k < n; ++k) {
    const auto index = static_cast<int64_t>(k);
    s.parameters[k].register_hook([weak, index](torch::Tensor grad) {
      if (const std::shared_ptr<Shared> shared = weak.lock()) shared->on_gradient(index, grad);
    });
  }
}

GradientBuckets::~GradientBuckets() = default;

void GradientBuckets::arm() {
  Shared& s = *shared_;
  TORCH_INTERNAL_ASSERT(!s.armed, "arm() twice without finish()");
  for (Shared::Bucket& bucket : s.buckets) {
    bucket.pending = static_cast<int64_t>(bucket.params.size());
  }
  std::fill(s.received.begin(), s.received.end(), 0);
  s.next_launch = 0;
  s.armed = true;
}

double GradientBuckets::finish() {
  Shared& s = *shared_;
  TORCH_INTERNAL_ASSERT(s.armed, "finish() without arm()");
  s.armed = false;
  for (size_t k = 0; k < s.parameters.size(); ++k) {
    // A missing gradient would leave the other ranks waiting for this bucket: a model whose
    // forward skips a parameter cannot train data-parallel here (DDP's find_unused_parameters).
    TORCH_CHECK(s.received[k], "parameter ", k, " (", s.parameters[k].sizes(),
                ") got no gradient in backward: every parameter must be used by the forward");
  }
  const auto start = std::chrono::steady_clock::now();
  for (Shared::Bucket& bucket : s.buckets) bucket.work.wait();
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  torch::NoGradGuard no_grad;
  const auto world = static_cast<double>(s.group->world_size());
  for (Shared::Bucket& bucket : s.buckets) {
    bucket.flat.div_(world);
    for (const int64_t k : bucket.params) {
      torch::Tensor& parameter = s.parameters[static_cast<size_t>(k)];
      const torch::Tensor slot =
          bucket.flat.narrow(0, s.offset_of[static_cast<size_t>(k)], parameter.numel());
      parameter.mutable_grad().copy_(slot.view_as(parameter));
    }
  }
  return waited;
}

int64_t GradientBuckets::num_buckets() const {
  return static_cast<int64_t>(shared_->buckets.size());
}

int64_t GradientBuckets::bucket_numel(int64_t i) const {
  return shared_->buckets.at(static_cast<size_t>(i)).flat.numel();
}

}  // namespace densenet::distributed
