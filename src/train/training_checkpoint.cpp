#include "densenet/train/training_checkpoint.h"

#include "densenet/data/dataset.h"
#include "densenet/io/weights.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace densenet::train {

std::optional<TrainingCheckpoint> read_training_checkpoint(const pth::Value& root,
                                                           const std::string& source) {
  if (!root.is(pth::Value::Kind::Dict)) return std::nullopt;
  const pth::Value* config = root.find("config");
  const pth::Value* model = root.find("model");
  if (config == nullptr || !config->is(pth::Value::Kind::String) || model == nullptr) {
    return std::nullopt;
  }
  TrainingCheckpoint checkpoint;
  load_config_text(checkpoint.config, config->as_string(), source + " (its config)");
  TORCH_CHECK(model->is(pth::Value::Kind::Dict), "'", source, "': its 'model' is a ",
              model->type_name(), ", not a state dict");
  checkpoint.weights = to_torchvision_keys(tensors_of(*model, source));
  if (checkpoint.config.stem.empty()) {
    // The stem the weights were trained with (a 3x3 or a 7x7 first convolution), not one that
    // another input size would choose.
    const torch::Tensor* conv0 = checkpoint.weights.find("features.conv0.weight");
    if (conv0 != nullptr && conv0->dim() == 4) {
      checkpoint.config.stem = conv0->size(-1) == 7 ? "imagenet" : "cifar";
    }
  }
  if (const pth::Value* classes = root.find("classes");
      classes != nullptr && classes->is(pth::Value::Kind::List)) {
    for (const pth::Value& name : classes->elements()) {
      TORCH_CHECK(name.is(pth::Value::Kind::String), "'", source, "': its 'classes' holds a ",
                  name.type_name(), ", not a class name");
      checkpoint.classes.push_back(name.as_string());
    }
  }
  return checkpoint;
}

void check_checkpoint_architecture(const TrainConfig& saved, const TrainConfig& requested,
                                   const std::vector<std::string>& given,
                                   const std::string& source) {
  // The architecture of a training checkpoint is the one it was trained with: another one asked
  // for could only fail to load, or be silently ignored. input-size may differ (the weights run
  // at any size their blocks take), and so may drop-rate (no dropout in evaluation).
  for (const ConfigKey& key : config_keys()) {
    if (!key.model || key.name == "input-size" || key.name == "drop-rate") continue;
    if (std::find(given.begin(), given.end(), key.name) == given.end()) continue;
    // Compared as built: `--bn-size 4` for a checkpoint whose preset has 4 is the same model.
    TrainConfig candidate = saved;
    copy_config_value(candidate, requested, key.name);
    const std::string has = effective_config_value(saved, key.name);
    const std::string asked = effective_config_value(candidate, key.name);
    TORCH_CHECK_VALUE(has == asked, "'", source, "' is a training checkpoint of ", saved.arch,
                      key.name == "arch" ? std::string() : " (" + key.name + " " + has + ")",
                      ", not ", key.name, " ", asked, ": its architecture comes from it; drop --",
                      key.name);
  }
}

int64_t trained_input_size(const TrainConfig& config) {
  if (config.input_size > 0) return config.input_size;
  if (config.dataset == "mnist" || config.dataset == "fashion-mnist") return 28;
  if (config.dataset == "imagefolder") return 224;  // the crop of torchvision's ImageNet recipe
  if (config.dataset == "synthetic") return data::DatasetOptions().synthetic_image_size;
  return 32;  // CIFAR
}

}  // namespace densenet::train
