#pragma once

#include "densenet/model/densenet.h"
#include "densenet/train/config.h"

#include <torch/types.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace densenet::data {
class DataLoader;
}
namespace densenet::distributed {
class ProcessGroup;
}

namespace densenet::train {

/// Loss and accuracy of a model over a whole evaluation set.
struct EvalResult {
  double loss = 0;     // mean cross-entropy per image (no label smoothing)
  double top1 = 0;     // % of images whose label has the highest logit
  double top5 = 0;     // % whose label is among the 5 highest (all of them when < 5 classes)
  int64_t images = 0;  // images evaluated
  double seconds = 0;  // wall-clock time
};

/// Evaluates `model` (switched to eval mode, no gradients) over every batch `loader` gives for
/// `epoch`. The caller restores train mode. With `group`, each rank's loader holds its own part
/// of the evaluation set (disjoint, no image twice) and the sums (loss, top-1 and top-5 counts,
/// images) are all-reduced: every rank returns the result over the whole set.
EvalResult evaluate(DenseNet& model, data::DataLoader& loader, const torch::Device& device,
                    int64_t epoch = 0, distributed::ProcessGroup* group = nullptr);

/// `densenet eval`: the weights in `weights` (.pth of any layout torchvision or this library
/// writes, .safetensors, or a training checkpoint) evaluated on the evaluation set (the test
/// split, or the validation split with valid-size). The model is `requested`'s; for a training
/// checkpoint it is the checkpoint's configuration with the keys in `given` taken from
/// `requested`, and the keys of its training alone (augmentation, optimisation) set aside
/// (reset_training_only_keys). Prints a summary line to `out`. Throws c10::ValueError when
/// `given` holds an architecture key (arch, growth-rate, ...) that differs from a training
/// checkpoint's own; c10::Error when the weights do not fit the model, the data cannot be read,
/// or the loss is not finite (NaN or infinite: the weights diverged).
EvalResult evaluate_weights(const TrainConfig& requested, const std::vector<std::string>& given,
                            const std::string& weights, std::ostream& out);

}  // namespace densenet::train
