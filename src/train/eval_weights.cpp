// `densenet eval`: any weights evaluated on a dataset's evaluation split.
#include "densenet/train/evaluate.h"

#include "densenet/io/weights.h"
#include "densenet/model/load_weights.h"
#include "densenet/train/training_checkpoint.h"

#include "train/print.h"
#include "train/run_setup.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdio>

namespace densenet::train {
namespace {

// What a training checkpoint was trained with, as evaluated: its architecture (another one given
// is refused), the keys given over it, and none of the keys of its training alone (augmentation,
// optimisation, mixed precision: evaluation runs in float32, so a GPU run's fp16 must not stop
// it on the CPU).
TrainConfig evaluated_config(const TrainingCheckpoint& checkpoint, const TrainConfig& requested,
                             const std::vector<std::string>& given, const std::string& weights) {
  check_checkpoint_architecture(checkpoint.config, requested, given, weights);
  TrainConfig config = checkpoint.config;
  reset_training_only_keys(config);
  for (const std::string& key : given) copy_config_value(config, requested, key);
  return config;
}

// Warnings and notes on stderr (stdout is the result): checkpoint classes that the folder lacks,
// and an input size other than the one the model was trained at (torchvision's users do
// evaluate at other sizes, so a note, not an error).
void warn_about_data(const TrainConfig* trained, const detail::RunData& data) {
  const std::string missing = data::missing_classes_warning(*data.eval_set, data.eval_name);
  if (!missing.empty()) std::fprintf(stderr, "%s\n", missing.c_str());
  if (trained == nullptr) return;
  const int64_t trained_size = trained_input_size(*trained);
  if (data.input_size != trained_size) {
    std::fprintf(stderr, "note: evaluating at %lld px, but the model was trained at %lld px\n",
                 static_cast<long long>(data.input_size), static_cast<long long>(trained_size));
  }
}

}  // namespace

EvalResult evaluate_weights(const TrainConfig& requested, const std::vector<std::string>& given,
                            const std::string& weights, std::ostream& out) {
  const WeightsFile file = read_weights_file(weights);
  std::optional<TrainingCheckpoint> checkpoint = read_training_checkpoint(file.root, weights);
  const TrainConfig config =
      checkpoint ? evaluated_config(*checkpoint, requested, given, weights) : requested;
  const StateDict state =
      checkpoint
          ? std::move(checkpoint->weights)
          : to_torchvision_keys(tensors_of(locate_state_dict(file.root, weights).dict, weights));
  validate(config);  // the options given over the checkpoint's must still make a model
  const torch::Device device = detail::device_of(config);
  detail::apply_threads(config);
  // A training checkpoint's classes: an image folder's class folders are looked up in them.
  const detail::RunData data = detail::open_data(
      config, /*need_train=*/false, checkpoint ? checkpoint->classes : std::vector<std::string>{},
      "checkpoint '" + weights + "'");
  warn_about_data(checkpoint ? &checkpoint->config : nullptr, data);
  const auto classes = static_cast<int64_t>(data.eval_set->classes().size());
  DenseNetOptions options =
      model_options(config, data.eval_set->channels(), classes, data.input_size);
  options.memory(parse_memory_mode(config.memory == "auto" ? "efficient" : config.memory));
  DenseNet model(options);
  // A mismatch names what the weights are and the flags that fit them (one short error).
  load_densenet_weights(*model, state, {weights, config.arch, config.dataset});
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
