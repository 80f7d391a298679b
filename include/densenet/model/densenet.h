#pragma once

#include "densenet/model/architecture.h"
#include "densenet/model/dense_block.h"
#include "densenet/model/options.h"
#include "densenet/model/sync_batch_norm.h"
#include "densenet/model/transition.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace densenet {

/// DenseNet / DenseNet-BC with torchvision's module tree, so that state-dict keys, shapes and
/// numerics match `torchvision.models.DenseNet` (and the original project's small-input
/// variant) and weights move both ways:
///   features.conv0, [features.norm0],
///   features.denseblock{b}.denselayer{l}.{norm1,conv1,norm2,conv2},
///   features.transition{t}.{norm,conv}, features.norm{B+1}, classifier.
class DenseNetImpl : public torch::nn::Cloneable<DenseNetImpl> {
 public:
  explicit DenseNetImpl(const DenseNetOptions& options = {});

  /// Builds the modules and initialises them as torchvision does: convolutions
  /// kaiming_normal_ (fan_in, gain sqrt(2)), BN weight 1 and bias 0, classifier bias 0.
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// input: (N, in_channels, H, W) -> logits (N, num_classes).
  torch::Tensor forward(const torch::Tensor& input);

  /// Converts parameters and floating-point buffers only, as PyTorch's Module.to does:
  /// LibTorch's default would also turn the int64 `num_batches_tracked` counters into floats,
  /// and checkpoints would no longer match PyTorch's.
  using torch::nn::Module::to;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;

  /// sync-bn: in training mode every batch norm of this model (in every memory mode) uses the
  /// statistics of the global batch, gathered with `all_reduce` (once per norm in forward and
  /// once in backward; see sync_batch_norm.h), and keeps running statistics of it, so that the
  /// replicas of a data-parallel run compute what one process with the whole batch would. An
  /// empty function turns it off (the default). Evaluation mode is unaffected.
  void sync_batch_norm(BatchNormAllReduce all_reduce);
  bool syncs_batch_norm() const { return static_cast<bool>(sync_); }

  /// Lays the 4-D weights out as NHWC (at::MemoryFormat::ChannelsLast), so that the
  /// convolutions, and through them the activations, run channels-last; forward converts its
  /// input to match. at::MemoryFormat::Contiguous goes back to NCHW. Why: oneDNN's and cuDNN's
  /// NHWC convolutions are faster for some shapes (PyTorch 1.13 on the CPU, DenseNet-BC-40
  /// batch 64 forward + backward: 382 ms NHWC against 511 ms NCHW, measured 2026-12-01).
  /// Memory mode naive only: the efficient and minimal stages keep NCHW channel planes. Throws
  /// c10::Error for another mode or format.
  void set_memory_format(at::MemoryFormat format);
  at::MemoryFormat memory_format() const { return memory_format_; }

  DenseNetOptions options;
  ArchitecturePlan plan;
  torch::nn::Sequential features{nullptr};
  torch::nn::Linear classifier{nullptr};
  /// The same modules as in `features`, for direct access.
  std::vector<DenseBlock> blocks;
  std::vector<Transition> transitions;  // one fewer than blocks
  torch::nn::BatchNorm2d final_norm{nullptr};

  /// Name of the final batch norm: "norm5" for four blocks, as torchvision.
  std::string final_norm_name() const;

 private:
  torch::Tensor forward_stem(const torch::Tensor& input);
  /// The efficient modes: each block with its transition (or the final norm) as one op.
  torch::Tensor forward_stages(const torch::Tensor& stem_output);

  BatchNormAllReduce sync_;  // empty: no sync-bn
  at::MemoryFormat memory_format_ = at::MemoryFormat::Contiguous;
};
TORCH_MODULE(DenseNet);

}  // namespace densenet
