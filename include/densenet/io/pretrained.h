#pragma once

#include "densenet/io/state_dict.h"
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
/// names the model in messages.
///
/// Throws c10::ValueError when `path` does not exist; c10::Error when the file cannot be read or
/// its architecture differs from the model's, in one line naming what differs and the config key
/// that sets it: "the file has dense blocks 6,12,32,32, densenet121 6,12,24,16 (block-config)",
/// likewise the stem (3x3 or 7x7), input channels, stem channels, growth rate, bottleneck width
/// and transition widths. Nothing is copied when it throws.
PretrainedReport load_pretrained(DenseNet& model, const std::string& path,
                                 const std::string& model_name = "the model");

/// Why `weights` (torchvision keys) cannot fit a model whose state dict is `model`, as phrases
/// joined by "; " ("the file has growth rate 48, densenet121 32 (growth-rate)"); "" when the
/// architectures agree (the class count is not compared: fine-tuning may change it).
std::string architecture_differences(const StateDict& weights, const StateDict& model,
                                     const std::string& model_name);

}  // namespace densenet
