// `densenet eval`: any weights evaluated on a dataset's evaluation split.
#include "densenet/train/evaluate.h"

#include "densenet/io/state_dict.h"
#include "densenet/io/weights.h"

#include "train/print.h"
#include "train/run_setup.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace densenet::train {
namespace {

bool contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// The architecture of a training checkpoint is the one it was trained with: another one asked
// for could only fail to load, or be silently ignored. input-size may differ (the weights run at
// any size their blocks take), and so may drop-rate (no dropout in evaluation).
void refuse_other_architecture(const TrainConfig& from_checkpoint, const TrainConfig& requested,
                               const std::vector<std::string>& given, const std::string& weights) {
  for (const ConfigKey& key : config_keys()) {
    if (!key.model || key.name == "input-size" || key.name == "drop-rate") continue;
    if (!contains(given, key.name)) continue;
    // Compared as built: `--bn-size 4` for a checkpoint whose preset has 4 is the same model.
    TrainConfig candidate = from_checkpoint;
    copy_config_value(candidate, requested, key.name);
    const std::string has = effective_config_value(from_checkpoint, key.name);
    const std::string asked = effective_config_value(candidate, key.name);
    TORCH_CHECK_VALUE(
        has == asked, "'", weights, "' is a training checkpoint of ", from_checkpoint.arch,
        key.name == "arch" ? std::string() : " (" + key.name + " " + has + ")", ", not ", key.name,
        " ", asked, ": its architecture comes from it; drop --", key.name);
  }
}

// The stem the weights were trained with (a 3x3 or a 7x7 first convolution), not one that
// another --input-size would choose.
std::string stem_of(const pth::Value& model) {
  const pth::Value* conv0 =
      model.is(pth::Value::Kind::Dict) ? model.find("features.conv0.weight") : nullptr;
  if (conv0 == nullptr || !conv0->is(pth::Value::Kind::Tensor)) return "";
  return conv0->as_tensor().size(-1) == 7 ? "imagenet" : "cifar";
}

// What a training checkpoint was trained with, as evaluated: its architecture, the keys given
// over it, and none of the keys of its training alone (augmentation, optimisation, mixed
// precision: evaluation runs in float32, so a GPU run's fp16 must not stop it on the CPU).
TrainConfig checkpoint_config(const pth::Value& root, const TrainConfig& requested,
                              const std::vector<std::string>& given, const std::string& weights) {
  TrainConfig config;
  load_config_text(config, root.find("config")->as_string(), weights + " (its config)");
  refuse_other_architecture(config, requested, given, weights);
  if (config.stem.empty()) config.stem = stem_of(*root.find("model"));
  reset_training_only_keys(config);
  for (const std::string& key : given) copy_config_value(config, requested, key);
  return config;
}

DenseNet load_model(const TrainConfig& config, const detail::RunData& data, const StateDict& state,
                    const std::string& weights) {
  const auto classes = static_cast<int64_t>(data.eval_set->classes().size());
  DenseNetOptions options =
      model_options(config, data.eval_set->channels(), classes, data.input_size);
  options.memory(parse_memory_mode(config.memory == "auto" ? "efficient" : config.memory));
  DenseNet model(options);
  try {
    load_state_dict(*model, fit_final_norm_name(state, *model), /*strict=*/true);
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "the weights in '", weights, "' do not fit ", config.arch, " with ",
                data.eval_set->channels(), " input channels and ", classes, " classes (",
                config.dataset,
                "); give the architecture they were trained with (--arch and its overrides): ",
                error.what_without_backtrace());
  }
  return model;
}

}  // namespace

EvalResult evaluate_weights(const TrainConfig& requested, const std::vector<std::string>& given,
                            const std::string& weights, std::ostream& out) {
  const WeightsFile file = read_weights_file(weights);
  const pth::Value* saved =
      file.root.is(pth::Value::Kind::Dict) ? file.root.find("config") : nullptr;
  const bool training_checkpoint =
      saved != nullptr && saved->is(pth::Value::Kind::String) && file.root.find("model");
  const TrainConfig config =
      training_checkpoint ? checkpoint_config(file.root, requested, given, weights) : requested;
  const StateDict state = training_checkpoint
                              ? to_torchvision_keys(tensors_of(*file.root.find("model"), weights))
                              : read_weights(weights);
  validate(config);  // the options given over the checkpoint's must still make a model
  const torch::Device device = detail::device_of(config);
  detail::apply_threads(config);
  // A training checkpoint's classes: an image folder's class folders are looked up in them.
  std::vector<std::string> classes;
  if (const pth::Value* names = training_checkpoint ? file.root.find("classes") : nullptr;
      names != nullptr && names->is(pth::Value::Kind::List)) {
    for (const pth::Value& name : names->elements()) classes.push_back(name.as_string());
  }
  const detail::RunData data =
      detail::open_data(config, /*need_train=*/false, classes, "checkpoint '" + weights + "'");
  DenseNet model = load_model(config, data, state, weights);
  model->to(device);
  const auto loader = detail::make_eval_loader(config, data, device);
  const EvalResult result = evaluate(model, *loader, device);
  detail::print(out, "%s %s (%s): loss %.4f  top-1 %.2f%%  top-5 %.2f%%  (%lld images, %.1f s)\n",
                config.dataset.c_str(), data.eval_name.c_str(), weights.c_str(), result.loss,
                result.top1, result.top5, static_cast<long long>(result.images), result.seconds);
  TORCH_CHECK(std::isfinite(result.loss), "the loss of '", weights, "' on the ", data.eval_name,
              " set is ", result.loss,
              ": the weights hold values that overflow (a run that diverged?); they give no "
              "usable predictions");
  return result;
}

}  // namespace densenet::train
