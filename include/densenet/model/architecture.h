#pragma once

#include "densenet/model/options.h"

#include <cstdint>
#include <vector>

namespace densenet {

/// Shapes of one dense block (and the transition after it, if any) at a given input size.
struct BlockPlan {
  int64_t num_layers = 0;        // L
  int64_t in_channels = 0;       // C0: channels entering the block
  int64_t growth_rate = 0;       // k
  int64_t bottleneck_width = 0;  // B = bn_size * k; 0 for plain layers
  int64_t out_channels = 0;      // C0 + L*k
  int64_t spatial = 0;           // H = W inside the block
  /// Channels after the following transition, floor(compression * out_channels); 0 if this
  /// is the last block.
  int64_t transition_out_channels = 0;

  /// Input width of layer l (0-based): C0 + l*k.
  int64_t layer_in_channels(int64_t l) const { return in_channels + l * growth_rate; }
};

/// Every channel count and spatial size of a DenseNet, derived from its options in one place
/// so that the model, `densenet info` and memory planning cannot disagree.
struct ArchitecturePlan {
  DenseNetOptions options;
  int64_t input_size = 0;        // nominal H = W of the input
  int64_t stem_out_spatial = 0;  // H after the stem (and its max-pool)
  std::vector<BlockPlan> blocks;
  int64_t final_channels = 0;  // channels into the final BN and the classifier

  /// Total dense layers; with the stem, transitions and classifier this is the paper's L.
  int64_t num_dense_layers() const;
  /// Depth as the paper counts it: convolutions in dense layers and transitions, the stem
  /// convolution and the classifier (DenseNet-121 -> 121).
  int64_t depth() const;
  int64_t num_parameters() const;
  /// Multiply-accumulates of one forward pass for one sample at `input_size` (convolutions
  /// and the classifier; normalisation and pooling are not counted).
  int64_t forward_macs() const;
};

/// Validates `options` and derives all shapes for a square input of `input_size` (defaults
/// to options.input_size()). Throws c10::Error when the feature maps would vanish, or when a
/// count (parameters, multiply-adds, activation memory) would overflow int64.
ArchitecturePlan plan_architecture(const DenseNetOptions& options, int64_t input_size = 0);

/// Height (or width) after the stem for an input of height `size`.
int64_t stem_output_size(const DenseNetOptions& options, int64_t size);

/// The smallest batch that can train `plan`: a batch norm in training mode needs more than one
/// value per channel (N*H*W > 1, PyTorch's rule), and the last dense block and the final norm
/// see the smallest feature maps; 2 when they are 1x1, else 1.
int64_t smallest_training_batch(const ArchitecturePlan& plan);

/// Throws c10::ValueError unless a training step of `batch` samples gives every batch norm of
/// `plan` more than one value per channel: one line naming the norms, their feature maps and
/// the batch or input size that would do. `batch` is what one forward pass sees: with
/// num-batch-splits, each split's part; on several ranks, each rank's (without sync-bn).
void check_batch_norm_values(const ArchitecturePlan& plan, int64_t batch);

}  // namespace densenet
