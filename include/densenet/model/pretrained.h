#pragma once

#include "densenet/model/densenet.h"

#include <cstdint>
#include <string>

namespace densenet {

/// What load_pretrained did, for the run's log.
struct PretrainedReport {
  std::string path;
  std::string model_name;                 // as given to load_pretrained, e.g. "densenet121"
  int64_t tensors_loaded = 0;             // tensors copied from the file (the classifier's or not)
  int64_t file_classes = 0;               // rows of the file's classifier (0: it has none)
  int64_t model_classes = 0;              // rows of the model's classifier
  bool classifier_reinitialised = false;  // kept the model's own (fresh) classifier

  /// One line: "pretrained: densenet121 weights from FILE; classifier re-initialised for 5
  /// classes (the file has 1000)", or "...; classifier loaded too (10 classes)".
  std::string summary() const;
};

/// Fine-tuning's start (timm's --initial-checkpoint, torchvision's --weights): copies the weights
/// in `path` into `model`, every parameter and buffer, except a classifier of another class
/// count, which keeps the model's own fresh initialisation. `path` is anything read_weights reads:
/// torchvision's published files (legacy keys too), training checkpoints (their `model`),
/// safetensors, the efficient-pytorch layouts, DataParallel's `module.` prefix. `model_name`
/// (the preset, --arch) names the model in messages; `dataset`, when given, is the data whose
/// channels the model takes.
///
/// Throws c10::ValueError when `path` does not exist; c10::Error when the file cannot be read or
/// its architecture differs from the model's, as load_densenet_weights says it: one line naming
/// what the weights are and the way out, then one indented line per field that differs (stem,
/// input channels, stem channels, blocks, growth rate, bottleneck, compression). Nothing is
/// copied when it throws.
PretrainedReport load_pretrained(DenseNet& model, const std::string& path,
                                 const std::string& model_name = "",
                                 const std::string& dataset = "");

}  // namespace densenet
