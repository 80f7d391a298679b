#pragma once

#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"

#include <string>

namespace densenet {

/// Where the model's fields come from, for the way out an error names.
struct WeightsSource {
  /// The file, named in errors.
  std::string path;
  /// The preset the model was built from (--arch): both are described in its terms where
  /// another preset would need as many overrides. "" for the nearest preset.
  std::string arch;
  /// Non-empty: the model's in-channels and num-classes are this dataset's (eval, train), not
  /// flags, so the error names the dataset for them instead of --in-channels / --num-classes.
  std::string dataset;
};

/// Loads `weights` (torchvision keys: read_weights, or to_torchvision_keys of a state dict)
/// strictly into `model`, fitting the final norm's name (fit_final_norm_name). When they do not
/// fit, nothing is copied and c10::Error says what the weights are, read from their shapes
/// (infer_architecture), in one line with the way out, then one indented line per differing
/// field:
///   'run/best.pth' holds densenet-bc-100 with --growth-rate 6 --block-config 2,2,2, not
///   densenet-bc-100: use --growth-rate 6 --block-config 2,2,2
///     num-init-features: 12 in the weights, 24 in the model
///     growth-rate: 6 in the weights, 12 in the model
///     block-config: 2,2,2 in the weights, 16,16,16 in the model
/// The way out is the flags that fit the model to them (overrides_between: no
/// --num-init-features where a BC model's new growth rate already gives 2k), or --arch with the
/// overrides of the preset the weights are nearest to where that needs fewer flags ("use --arch
/// densenet121" for weights that are another preset). When the shapes are not a DenseNet's, or are
/// this model's (a key is missing or extra), the error is load_state_dict's short key listing
/// instead.
void load_densenet_weights(DenseNetImpl& model, const StateDict& weights,
                           const WeightsSource& source);

}  // namespace densenet
