#include "densenet/model/load_weights.h"

#include "densenet/io/weights.h"
#include "densenet/model/infer_architecture.h"
#include "densenet/model/presets.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace densenet {

namespace {

bool decided_by_data(const std::string& key) {
  return key == "in-channels" || key == "num-classes";
}

// What to change so that the model (of preset `model_preset` with overrides) fits weights of
// architecture `theirs`: the flags from the model, or --arch and the overrides of the preset the
// weights are nearest to where that takes fewer flags (a preset alone, for weights that are
// one). Fields the data decides are left out when `source.dataset` is set.
std::string way_out(const DenseNetOptions& ours, const DenseNetOptions& theirs,
                    const std::string& model_preset, const WeightsSource& source) {
  auto settable = [&source](std::vector<std::pair<std::string, std::string>> flags) {
    if (source.dataset.empty()) return flags;
    flags.erase(std::remove_if(flags.begin(), flags.end(),
                               [](const auto& flag) { return decided_by_data(flag.first); }),
                flags.end());
    return flags;
  };
  const auto all = overrides_between(ours, theirs);
  auto flags = settable(all);
  const bool data_differs = flags.size() != all.size();
  const PresetMatch preset = nearest_preset(theirs, model_preset);
  const auto from_preset = settable(preset.overrides);
  if (preset.preset != model_preset && from_preset.size() + 1 <= flags.size()) {
    flags = from_preset;
    flags.insert(flags.begin(), {"arch", preset.preset});
  }
  std::string text = flags.empty() ? "" : "use " + format_overrides(flags);
  if (data_differs) {
    text += (text.empty() ? "" : "; ") + std::string("the dataset (") + source.dataset +
            ") decides in-channels and num-classes";
  }
  return text;
}

}  // namespace

std::string architecture_mismatch(const StateDict& weights, const DenseNetOptions& model,
                                  const WeightsSource& source) {
  DenseNetOptions theirs, ours = model;
  try {
    theirs = infer_architecture(weights);
  } catch (const c10::Error&) {  // not a DenseNet's shapes: the key listing says what is wrong
    return "";
  }
  if (source.fine_tuning) theirs.num_classes(ours.num_classes());
  const std::vector<ArchitectureDifference> differences = architecture_differences(theirs, ours);
  if (differences.empty()) return "";
  // Both are described from the model's preset where another needs as many overrides: the
  // one the user chose, or else the one the weights are.
  const std::string model_preset =
      nearest_preset(ours, source.arch.empty() ? nearest_preset(theirs).preset : source.arch)
          .preset;
  if (source.fine_tuning) {
    // Described with the preset's class count, so that neither names one: the file's is not
    // in `weights` (its classifier was replaced) and the model's is the data's.
    theirs.num_classes(preset_options(model_preset).num_classes());
    ours.num_classes(theirs.num_classes());
  }
  std::string message = "'" + source.path + "' holds " +
                        describe_architecture(theirs, model_preset) + ", not " +
                        describe_architecture(ours, model_preset);
  const std::string fix = way_out(ours, theirs, model_preset, source);
  if (!fix.empty()) message += ": " + fix;
  for (const ArchitectureDifference& difference : differences) {
    message += "\n  " + difference.key + ": " + difference.first + " in the weights, " +
               difference.second + " in the model";
    if (!source.dataset.empty() && decided_by_data(difference.key)) {
      message += " (" + source.dataset + "'s)";
    }
  }
  return message;
}

void check_wrapper_prefix(const DenseNetImpl& model, const StateDict& weights,
                          const std::string& path) {
  const std::string prefix =
      wrapper_prefix(weights, state_dict(model), fit_final_norm_name, &model);
  TORCH_CHECK(prefix.empty(), "the weights in '", path,
              "' do not fit the model: ", wrapper_prefix_hint(weights, prefix));
}

void check_finite_weights(const StateDict& weights, const std::string& path) {
  const std::string bad = non_finite_summary(weights);
  TORCH_CHECK(bad.empty(), "the weights in '", path, "' hold non-finite values: ", bad,
              "; they give no usable predictions (from a run that diverged?)");
}

void load_densenet_weights(DenseNetImpl& model, const StateDict& weights,
                           const WeightsSource& source) {
  if (!source.allow_non_finite) check_finite_weights(weights, source.path);
  try {
    load_state_dict(model, fit_final_norm_name(weights, model), /*strict=*/true);
  } catch (const c10::Error& error) {
    check_wrapper_prefix(model, weights, source.path);
    const std::string mismatch = architecture_mismatch(weights, model.options, source);
    TORCH_CHECK(mismatch.empty(), mismatch);
    TORCH_CHECK(false, "the weights in '", source.path,
                "' do not fit the model: ", error.what_without_backtrace());
  }
}

}  // namespace densenet
