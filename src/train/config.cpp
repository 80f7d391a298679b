#include "densenet/train/config.h"

#include "train/config_table.h"

#include "densenet/model/architecture.h"
#include "densenet/model/options.h"
#include "densenet/model/presets.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/amp.h"

#include "densenet/util/edit_distance.h"

#include <c10/util/Exception.h>
#include <torch/version.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <regex>
#include <sstream>

namespace densenet::train {

using detail::find_key;
using detail::key_table;
using detail::KeyAccess;
using detail::normalize_key;

namespace {

void require(bool ok, const std::string& key, const std::string& what, const std::string& given) {
  TORCH_CHECK_VALUE(ok, "config key '", key, "' ", what, ", got ", given);
}

void require_one_of(const std::string& key, const std::string& value,
                    const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string list;
  for (const auto& choice : choices) list += (list.empty() ? "" : ", ") + choice;
  TORCH_CHECK_VALUE(false, "config key '", key, "': unknown value '", value, "': use one of ",
                    list);
}

}  // namespace

bool ValueRange::contains(double value) const {
  return (min_open ? value > min : value >= min) && (max_open ? value < max : value <= max);
}

std::string ValueRange::describe() const {
  std::ostringstream text;
  if (std::isinf(max)) {
    text << "must be " << (min_open ? "> " : ">= ") << min;
  } else {
    text << "must be in " << (min_open ? "(" : "[") << min << ", " << max << (max_open ? ")" : "]");
  }
  if (!note.empty()) text << " " << note;
  return text.str();
}

std::string ConfigKey::described_help() const {
  std::string text = help;
  if (!choices.empty()) {
    std::string list;
    for (const auto& choice : choices) list += (list.empty() ? "" : " | ") + choice;
    text += " (" + list + ")";
  }
  return text;
}

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    std::vector<ConfigKey> result;
    for (const auto& access : key_table()) result.push_back(access.key);
    return result;
  }();
  return keys;
}

const ConfigKey& config_key(const std::string& name) {
  return find_key(name).key;
}

void set_config_value(TrainConfig& config, const std::string& key, const std::string& text) {
  const KeyAccess& access = find_key(key);
  access.set(config, detail::node_from_text(access.key, text));
}

std::string config_value(const TrainConfig& config, const std::string& key) {
  YAML::Emitter out;
  out << find_key(key).get(config);
  return out.c_str();
}

std::string canonical_key(const std::string& key) {
  return find_key(key).key.name;
}

std::vector<std::string> load_config_text(TrainConfig& config, const std::string& text,
                                          const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    TORCH_CHECK_VALUE(false, "'", source, "' is not a YAML file: ", error.msg, " at line ",
                      error.mark.line + 1, ", column ", error.mark.column + 1);
  }
  std::vector<std::string> keys;
  if (root.IsNull()) return keys;  // an empty file sets nothing
  TORCH_CHECK_VALUE(root.IsMap(), "'", source,
                    "' must be a YAML mapping of config keys to values (e.g. 'epochs: 10'), not a ",
                    root.IsSequence() ? "list" : "single value");
  for (const auto& item : root) {
    // A complex key ("? [a]"): as<std::string> would throw yaml-cpp's bare "bad conversion".
    TORCH_CHECK_VALUE(item.first.IsScalar(), "'", source, "': a config key must be a name such as ",
                      "'epochs', got ",
                      item.first.IsSequence() ? "a list"
                      : item.first.IsMap()    ? "a mapping"
                                              : "an empty key",
                      " at line ", item.first.Mark().line + 1);
    const std::string key = item.first.as<std::string>();
    try {
      const KeyAccess& access = find_key(key);
      TORCH_CHECK_VALUE(std::find(keys.begin(), keys.end(), access.key.name) == keys.end(), "key '",
                        access.key.name, "' is given twice (the later would silently win)");
      access.set(config, item.second);
      keys.push_back(access.key.name);
    } catch (const c10::Error& error) {
      TORCH_CHECK_VALUE(false, source, ": ", error.what_without_backtrace());
    }
  }
  return keys;
}

std::vector<std::string> load_config_file(TrainConfig& config, const std::string& path) {
  std::error_code error;
  TORCH_CHECK_VALUE(!std::filesystem::is_directory(path, error), "config file '", path,
                    "' is a directory: give a YAML file such as configs/fashion-mnist.yaml");
  std::ifstream file(path);
  TORCH_CHECK_VALUE(file.good(), "cannot read config file '", path, "': ", std::strerror(errno));
  std::stringstream text;
  text << file.rdbuf();
  return load_config_text(config, text.str(), path);
}

std::string config_to_yaml(const TrainConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& access : key_table()) {
    out << YAML::Key << access.key.name << YAML::Value << access.get(config);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void copy_config_value(TrainConfig& to, const TrainConfig& from, const std::string& key) {
  const KeyAccess& access = find_key(key);
  access.set(to, access.get(from));
}

bool may_change_on_resume(const std::string& key) {
  return find_key(key).key.may_change_on_resume;
}

void reset_training_only_keys(TrainConfig& config) {
  static const TrainConfig defaults;
  for (const auto& access : key_table()) {
    if (!access.key.eval) access.set(config, access.get(defaults));
  }
}

namespace {

// The architecture overrides as the model built from them has them: an unset one is the
// preset's (bn-size 4 for a BC preset), a BC stem follows a new growth rate.
std::string built_value(const DenseNetOptions& options, const std::string& name) {
  std::ostringstream out;
  if (name == "growth-rate") out << options.effective_growth_rate();
  if (name == "num-init-features") out << options.num_init_features();
  if (name == "bn-size") out << options.bn_size();
  if (name == "compression") out << options.compression();
  if (name == "drop-rate") out << options.drop_rate();
  if (name == "stem") out << stem_name(options.effective_stem());
  if (name == "block-config") out << format_int_list(options.block_config());
  return out.str();
}

}  // namespace

std::string effective_config_value(const TrainConfig& config, const std::string& key) {
  const std::string name = normalize_key(key);
  if (name == "milestones") {  // empty: the paper's 50% and 75% of the epochs
    std::ostringstream out;
    const std::vector<double> milestones = effective_milestones(config);
    for (size_t i = 0; i < milestones.size(); ++i) out << (i == 0 ? "" : ",") << milestones[i];
    return out.str();
  }
  // arch and input-size are what they say; the other architecture keys override the preset.
  if (!find_key(name).key.model || name == "arch" || name == "input-size") {
    return config_value(config, name);
  }
  try {
    return built_value(model_options(config, 0, 0, config.input_size), name);
  } catch (const c10::Error&) {
    return config_value(config, name);  // not buildable: validate says why
  }
}

void check_unchanged_on_resume(const TrainConfig& base, const TrainConfig& continued,
                               const std::string& key) {
  if (config_value(base, key) == config_value(continued, key)) return;
  const std::string has = effective_config_value(base, key);
  const std::string given = effective_config_value(continued, key);
  TORCH_CHECK_VALUE(has == given, "cannot change '", normalize_key(key),
                    "' when resuming: the run has ", has, ", given ", given,
                    " (start a new run with --output-dir to train with it)");
}

TrainConfig resume_config(const TrainConfig& saved, const TrainConfig& requested,
                          const std::vector<std::string>& given) {
  // The run as it continues without the other keys given: what each of them is compared with.
  TrainConfig base = saved;
  for (const std::string& key : given) {
    if (may_change_on_resume(key)) copy_config_value(base, requested, key);
  }
  TrainConfig merged = saved;
  for (const std::string& key : given) {
    // Compared as built: `--bn-size 4` on a run that left it to its preset's 4 changes nothing,
    // nor do `--epochs 8 --milestones 4,6` on a run whose default milestones become 4,6.
    TrainConfig candidate = base;
    copy_config_value(candidate, requested, key);
    if (!may_change_on_resume(key)) check_unchanged_on_resume(base, candidate, key);
    copy_config_value(merged, requested, key);
  }
  return merged;
}

DenseNetOptions model_options(const TrainConfig& config, int64_t channels, int64_t classes,
                              int64_t input_size) {
  ModelOverrides overrides;
  overrides.growth_rate = config.growth_rate;
  overrides.num_init_features = config.num_init_features;
  if (!config.block_config.empty()) overrides.block_config = config.block_config;
  overrides.bn_size = config.bn_size;
  overrides.compression = config.compression;
  overrides.drop_rate = config.drop_rate;
  if (!config.stem.empty()) overrides.stem = parse_stem(config.stem);
  if (channels > 0) overrides.in_channels = channels;
  if (classes > 0) overrides.num_classes = classes;
  if (input_size > 0) overrides.input_size = input_size;
  return apply_overrides(preset_options(config.arch), overrides);
}

bool uses_loss_scaler(const TrainConfig& config) {
  return config.loss_scale == "dynamic" || (config.loss_scale == "auto" && config.amp == "fp16");
}

std::vector<double> effective_milestones(const TrainConfig& config) {
  if (!config.milestones.empty()) return config.milestones;
  return {0.5 * static_cast<double>(config.epochs), 0.75 * static_cast<double>(config.epochs)};
}

namespace {

std::string text_of(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// What the table says of each key: a string among its choices, a number in its range.
void check_key_values(const TrainConfig& c) {
  static const TrainConfig defaults;
  for (const auto& access : key_table()) {
    const ConfigKey& key = access.key;
    const YAML::Node value = access.get(c);
    if (!key.choices.empty()) {
      // An empty value whose default is empty (stem) means "chosen for you".
      if (value.Scalar().empty() && access.get(defaults).Scalar().empty()) continue;
      require_one_of(key.name, value.Scalar(), key.choices);
    }
    if (key.range && !value.IsNull()) {
      require(key.range->contains(value.as<double>()), key.name, key.range->describe(),
              config_value(c, key.name));
    }
  }
}

void check_model(const TrainConfig& c, bool check_model) {
  try {
    preset_options(c.arch);  // checked with the other keys, before anything is read or written
  } catch (const c10::Error& error) {
    TORCH_CHECK_VALUE(false, "config key 'arch': ", error.what_without_backtrace());
  }
  if (check_model) {
    try {
      // The architecture with its overrides, at the given input size (the dataset's channels
      // and classes are not known yet; they do not decide whether it can be built).
      plan_architecture(model_options(c, 0, 0, c.input_size));
    } catch (const c10::Error& error) {
      TORCH_CHECK_VALUE(false, "the model options: ", error.what_without_backtrace());
    }
  }
  require(!c.channels_last || c.memory == "naive", "channels-last",
          "applies to memory naive only (the efficient and minimal stages keep NCHW channel "
          "planes); add --memory naive",
          "true with memory " + c.memory);
  require(c.memory_budget == 0 || c.memory == "auto", "memory-budget",
          "is used by memory: auto only (this run uses memory " + c.memory + ")",
          config_value(c, "memory-budget"));
}

// Each augmentation pipeline takes only its own options: a key the run would ignore is a mistake.
void check_data(const TrainConfig& c) {
  const bool resized_crop = c.dataset == "imagefolder";
  const bool pad_crop = c.dataset != "imagefolder" && c.dataset != "synthetic";
  require(!pad_crop || c.color_jitter == 0, "color-jitter",
          "applies to image folders (RandomResizedCrop pipeline), not to " + c.dataset,
          text_of(c.color_jitter));
  require(!pad_crop || c.lighting == 0, "lighting",
          "applies to image folders (RandomResizedCrop pipeline), not to " + c.dataset,
          text_of(c.lighting));
  require(!resized_crop || c.crop_padding == TrainConfig{}.crop_padding, "crop-padding",
          "applies to MNIST and CIFAR (RandomCrop pipeline), not to image folders",
          text_of(static_cast<double>(c.crop_padding)));
  require(c.dataset != "imagefolder" || !c.data.empty(), "data",
          "must name the image folder root (ROOT/train/CLASS/*.jpg) for dataset imagefolder",
          "nothing");
}

void check_schedule(const TrainConfig& c) {
  require(c.num_batch_splits >= 1 && c.num_batch_splits <= c.batch_size, "num-batch-splits",
          "must be in [1, batch-size=" + text_of(static_cast<double>(c.batch_size)) + "]",
          text_of(static_cast<double>(c.num_batch_splits)));
  // Absolute epochs (fractions allowed: 1.5 drops lr mid-epoch 2), not fractions of the run:
  // 0.5,0.75 would drop lr twice within epoch 1.
  for (const double milestone : c.milestones) {
    require(milestone >= 1 && milestone <= static_cast<double>(c.epochs), "milestones",
            "must be epochs in [1, epochs=" + text_of(static_cast<double>(c.epochs)) +
                "], e.g. 30,60 (absolute epochs, not fractions of the run)",
            text_of(milestone));
  }
  require(std::adjacent_find(c.milestones.begin(), c.milestones.end(),
                             std::greater_equal<double>()) == c.milestones.end(),
          "milestones", "must be increasing", config_value(c, "milestones"));
  require(c.milestones.empty() || c.lr_type == "multistep", "milestones",
          "applies to lr-type multistep only (this run uses " + c.lr_type + ")",
          config_value(c, "milestones"));
  require(c.warmup_epochs >= 0 && c.warmup_epochs < static_cast<double>(c.epochs), "warmup-epochs",
          "must be in [0, epochs)", text_of(c.warmup_epochs));
  // Schedule refuses it too (a c10::Error, status 1): here it is the usage mistake it is.
  require(c.lr_type != "triangle" || c.warmup_epochs == 0, "warmup-epochs",
          "must be 0 with lr-type triangle (its cycles start at min(1e-3, lr)): set it to 0 or "
          "use another lr-type",
          text_of(c.warmup_epochs));
  require(!c.nesterov || c.optimizer != "sgd" || c.momentum > 0, "nesterov",
          "needs momentum > 0 (set momentum or nesterov: false)", "true");
}

void check_loss_scale(const TrainConfig& c) {
  require(c.loss_scale != "dynamic" || c.amp != "none", "loss-scale",
          "dynamic applies to amp fp16 or bf16 runs (this run has amp none)", "dynamic");
  require(std::isfinite(c.loss_scale_init) && c.loss_scale_init > 0 &&
              c.loss_scale_init <= std::numeric_limits<float>::max(),
          "loss-scale-init", "must be a positive float32 number, e.g. 65536",
          text_of(c.loss_scale_init));
  require(c.loss_scale_growth_interval >= 1 &&
              c.loss_scale_growth_interval <= std::numeric_limits<int32_t>::max(),
          "loss-scale-growth-interval", "must be in [1, 2^31)",
          text_of(static_cast<double>(c.loss_scale_growth_interval)));
  const TrainConfig defaults;
  const bool init_set = c.loss_scale_init != defaults.loss_scale_init;
  const bool interval_set = c.loss_scale_growth_interval != defaults.loss_scale_growth_interval;
  TORCH_CHECK_VALUE(
      uses_loss_scaler(c) || (!init_set && !interval_set), "config key",
      init_set && interval_set ? "s 'loss-scale-init' and 'loss-scale-growth-interval' apply"
      : init_set               ? " 'loss-scale-init' applies"
                               : " 'loss-scale-growth-interval' applies",
      " to the dynamic loss scale only (this run has amp ", c.amp, ", loss-scale ", c.loss_scale,
      "): set loss-scale dynamic, or leave ", init_set && interval_set ? "them" : "it", " out");
  // Tried, not assumed: later LibTorch versions run float16 autocast on the CPU.
  TORCH_CHECK_VALUE(
      c.amp != "fp16" || c.device != "cpu" ||
          autocast_supported(c10::DeviceType::CPU, c10::ScalarType::Half),
      "config key 'amp': fp16 on device cpu needs float16 autocast, which this LibTorch (",
      TORCH_VERSION, ") has only on CUDA: use amp bf16 on the CPU, or device cuda");
}

// The EMA's keys need an EMA; a pretrained file is read once, at the start of a run (a resumed
// run has the weights in its checkpoint), so a file named but missing is a mistake found before
// anything runs.
void check_fine_tuning(const TrainConfig& c) {
  const TrainConfig defaults;
  const bool ema_key_set = c.model_ema_decay != defaults.model_ema_decay || c.model_ema_warmup;
  TORCH_CHECK_VALUE(c.model_ema || !ema_key_set, "config key '",
                    c.model_ema_warmup ? "model-ema-warmup" : "model-ema-decay",
                    "' applies to the model EMA, which this run does not keep: add model-ema "
                    "true, or leave it out");
  std::error_code error;
  const bool directory = std::filesystem::is_directory(c.pretrained, error);
  TORCH_CHECK_VALUE(c.pretrained.empty() || !c.resume.empty() ||
                        (std::filesystem::exists(c.pretrained, error) && !directory),
                    "config key 'pretrained': no such file '", c.pretrained, "'",
                    directory ? " (it is a directory: give a weights file such as "
                                "densenet121-a639ec97.pth)"
                              : "");
}

}  // namespace

void validate(const TrainConfig& c, bool check_model_options) {
  check_key_values(c);
  check_model(c, check_model_options);
  check_data(c);
  check_schedule(c);
  check_loss_scale(c);
  check_fine_tuning(c);
  // Whether this machine has it is checked where a rank starts (distributed::gloo_interfaces).
  require(c.dist_ifname.size() < 16 && c.dist_ifname.find_first_of("/ \t,") == std::string::npos,
          "dist-ifname",
          "must be one network interface name (under 16 characters, no '/', ',' or spaces)",
          "'" + c.dist_ifname + "'");
  require(c.device == "cpu" || c.device == "cuda" ||
              std::regex_match(c.device, std::regex("cuda:[0-9]{1,3}")),
          "device", "must be cpu, cuda or cuda:N", "'" + c.device + "'");
}

}  // namespace densenet::train
