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
  /// Accept NaN and infinite values (convert, which copies tensors bit for bit, only warns);
  /// otherwise they are refused, as they give no usable predictions.
  bool allow_non_finite = false;
  /// The classifier is the model's own (fine-tuning replaces one of another class count): the
  /// class count is neither compared nor named in the error.
  bool fine_tuning = false;
};

/// The short error for weights whose shapes are another DenseNet's than `ours` (the first lines
/// of load_densenet_weights' error, below); "" when they are this architecture (then a key
/// itself is missing or extra) or no DenseNet's at all.
std::string architecture_mismatch(const StateDict& weights, const DenseNetOptions& ours,
                                  const WeightsSource& source);

/// Throws c10::Error (one line) when every key of `weights` carries a prefix that, stripped,
/// would make them `model`'s keys (final norm names fitted): "the weights in 'FILE' do not fit
/// the model: every key in the weights starts with 'backbone.' ...; strip that prefix from the
/// keys". Called by load_densenet_weights and load_pretrained, so every command says the same.
void check_wrapper_prefix(const DenseNetImpl& model, const StateDict& weights,
                          const std::string& path);

/// Throws c10::Error (one line) naming the first tensor of `weights` that holds a NaN or an
/// infinity and how many values (non_finite_summary).
void check_finite_weights(const StateDict& weights, const std::string& path);

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
/// instead. Weights with a NaN or an infinity are refused first (check_finite_weights) unless
/// `source.allow_non_finite`.
void load_densenet_weights(DenseNetImpl& model, const StateDict& weights,
                           const WeightsSource& source);

}  // namespace densenet
