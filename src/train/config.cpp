#include "densenet/train/config.h"

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
namespace {

// One key: its description plus how to read and write its value. A table keeps the YAML file,
// the command line and config.yaml in step: every key exists in all three or in none.
struct KeyAccess {
  ConfigKey key;
  std::function<void(TrainConfig&, const YAML::Node&)> set;
  std::function<YAML::Node(const TrainConfig&)> get;
};

[[noreturn]] void bad_value(const std::string& key, const std::string& expected,
                            const YAML::Node& node) {
  std::string given;
  if (node.IsScalar()) {
    given = "'" + node.Scalar() + "'";
  } else {
    YAML::Emitter out;
    out << YAML::Flow << node;
    given = out.c_str();
  }
  TORCH_CHECK(false, "config key '", key, "': expected ", expected, ", got ", given);
}

template <typename T>
T scalar_as(const std::string& key, const YAML::Node& node, const std::string& expected) {
  if (!node.IsScalar()) bad_value(key, expected, node);
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    bad_value(key, expected, node);
  }
}

int64_t read_int(const std::string& key, const YAML::Node& node) {
  // yaml-cpp reads "010" as octal 8 (YAML 1.1); a value typed as "010" means ten.
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    const size_t digits = text.find_first_not_of("+-");
    if (digits != std::string::npos && text.size() > digits + 1 && text[digits] == '0' &&
        std::isdigit(static_cast<unsigned char>(text[digits + 1]))) {
      bool decimal = text.find_first_not_of("0123456789", digits) == std::string::npos;
      if (decimal) {
        try {
          return std::stoll(text, nullptr, 10);
        } catch (const std::exception&) {
          decimal = false;
        }
      }
      if (!decimal) bad_value(key, "an integer", node);
    }
  }
  return scalar_as<int64_t>(key, node, "an integer");
}
double read_real(const std::string& key, const YAML::Node& node) {
  const double value = scalar_as<double>(key, node, "a number");
  if (!std::isfinite(value)) bad_value(key, "a finite number", node);
  return value;
}
bool read_bool(const std::string& key, const YAML::Node& node) {
  return scalar_as<bool>(key, node, "true or false");
}
int64_t read_size(const std::string& key, const YAML::Node& node) {
  if (!node.IsScalar()) bad_value(key, "a size such as 4GiB, 512MiB or a byte count", node);
  if (node.Scalar() == "0") return 0;
  try {
    return parse_byte_size(node.Scalar());
  } catch (const c10::Error&) {
    bad_value(key, "a size such as 4GiB, 512MiB or a byte count", node);
  }
}
std::string read_string(const std::string& key, const YAML::Node& node) {
  if (node.IsNull()) return "";
  return scalar_as<std::string>(key, node, "a string");
}

template <typename T, typename Read>
std::vector<T> read_list(const std::string& key, const YAML::Node& node, Read read) {
  if (node.IsNull()) return {};
  if (!node.IsSequence()) bad_value(key, "a list such as [6, 12, 24, 16] or 6,12,24,16", node);
  std::vector<T> values;
  for (const auto& element : node) values.push_back(read(key, element));
  return values;
}

// The shortest text that reads back as the same double (0.1, not yaml-cpp's 0.10000000000000001).
YAML::Node real_node(double value) {
  char text[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(text, sizeof(text), "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return YAML::Node(std::string(text));
}
YAML::Node value_node(double value) {
  return real_node(value);
}
YAML::Node value_node(int64_t value) {
  return YAML::Node(value);
}

template <typename T>
YAML::Node optional_node(const std::optional<T>& value) {
  return value ? value_node(*value) : YAML::Node(YAML::NodeType::Null);
}

template <typename T>
YAML::Node list_node(const std::vector<T>& values) {
  YAML::Node node(YAML::NodeType::Sequence);
  for (const T& value : values) node.push_back(value_node(value));
  node.SetStyle(YAML::EmitterStyle::Flow);
  return node;
}

#define DENSENET_KEY(NAME, TYPE, MODEL, HELP, SET, GET)      \
  KeyAccess {                                                \
    ConfigKey{NAME, TYPE, HELP, MODEL, {}},                  \
        [](TrainConfig& c, const YAML::Node& node) {         \
          const std::string key = NAME;                      \
          SET;                                               \
        },                                                   \
        [](const TrainConfig& c) { return YAML::Node(GET); } \
  }

KeyAccess with_aliases(KeyAccess access, std::vector<std::string> aliases) {
  access.key.aliases = std::move(aliases);
  return access;
}

const std::vector<KeyAccess>& table() {
  static const std::vector<KeyAccess> keys = {
      // Data.
      DENSENET_KEY("dataset", "string", false,
                   "fashion-mnist | mnist | cifar10 | cifar100 | imagefolder | synthetic",
                   c.dataset = read_string(key, node), c.dataset),
      DENSENET_KEY("data", "string", false,
                   "dataset root directory (default: the dataset's, e.g. "
                   "/usr/share/datasets/fashion-mnist)",
                   c.data = read_string(key, node), c.data),
      DENSENET_KEY("input-size", "int", true,
                   "image side in pixels (0: the dataset's: 28 MNIST, 32 CIFAR, 224 folders)",
                   c.input_size = read_int(key, node), c.input_size),
      DENSENET_KEY("valid-size", "int", false,
                   "training images held out for validation (fixed by the seed); 0 = none",
                   c.valid_size = read_int(key, node), c.valid_size),
      DENSENET_KEY("max-train-samples", "int", false, "use only this many training images (0: all)",
                   c.max_train_samples = read_int(key, node), c.max_train_samples),
      DENSENET_KEY("max-eval-samples", "int", false, "evaluate on only this many images (0: all)",
                   c.max_eval_samples = read_int(key, node), c.max_eval_samples),
      DENSENET_KEY("workers", "int", false, "loader threads that decode and augment",
                   c.workers = read_int(key, node), c.workers),
      DENSENET_KEY("augment", "bool", false,
                   "the dataset's training augmentation: crop-padding, hflip, color-jitter, "
                   "lighting (false: none)",
                   c.augment = read_bool(key, node), c.augment),
      DENSENET_KEY("crop-padding", "int", false,
                   "pixels of zero padding before the random crop of MNIST and CIFAR images "
                   "(torchvision RandomCrop padding; 0: flip only)",
                   c.crop_padding = read_int(key, node), c.crop_padding),
      DENSENET_KEY("hflip", "real", false,
                   "probability of a horizontal flip of a training image (timm's hflip; 0 for "
                   "digits)",
                   c.hflip = read_real(key, node), real_node(c.hflip)),
      DENSENET_KEY("color-jitter", "real", false,
                   "ColorJitter brightness/contrast/saturation factor for image folders (0: off)",
                   c.color_jitter = read_real(key, node), real_node(c.color_jitter)),
      DENSENET_KEY("lighting", "real", false,
                   "AlexNet PCA lighting alpha std for image folders, e.g. 0.1 (0: off)",
                   c.lighting = read_real(key, node), real_node(c.lighting)),
      // Model.
      DENSENET_KEY("arch", "string", true,
                   "architecture preset (densenet info --list), e.g. densenet-bc-100",
                   c.arch = read_string(key, node), c.arch),
      DENSENET_KEY(
          "num-init-features", "int", true, "stem output channels (default: the preset's)",
          c.num_init_features = node.IsNull() ? std::nullopt : std::optional(read_int(key, node)),
          optional_node(c.num_init_features)),
      DENSENET_KEY(
          "growth-rate", "int", true, "k: channels each dense layer adds",
          c.growth_rate = node.IsNull() ? std::nullopt : std::optional(read_int(key, node)),
          optional_node(c.growth_rate)),
      DENSENET_KEY(
          "block-config", "int list", true, "dense layers per block, e.g. 6,12,24,16",
          c.block_config = read_list<int64_t>(key, node, read_int),
          c.block_config.empty() ? YAML::Node(YAML::NodeType::Null) : list_node(c.block_config)),
      DENSENET_KEY("bn-size", "int", true, "bottleneck width factor (0: plain layers)",
                   c.bn_size = node.IsNull() ? std::nullopt : std::optional(read_int(key, node)),
                   optional_node(c.bn_size)),
      DENSENET_KEY(
          "compression", "real", true, "theta: transition channel factor in (0, 1]",
          c.compression = node.IsNull() ? std::nullopt : std::optional(read_real(key, node)),
          optional_node(c.compression)),
      DENSENET_KEY("drop-rate", "real", true, "dropout after each dense layer, in [0, 1)",
                   c.drop_rate = node.IsNull() ? std::nullopt : std::optional(read_real(key, node)),
                   optional_node(c.drop_rate)),
      DENSENET_KEY("stem", "string", true,
                   "cifar (one 3x3 conv) | imagenet (7x7/2 conv + max-pool); empty: cifar for "
                   "inputs up to 32 pixels",
                   c.stem = read_string(key, node), c.stem),
      DENSENET_KEY("memory", "string", false,
                   "naive | efficient | minimal | auto (auto: fastest that fits memory-budget)",
                   c.memory = read_string(key, node), c.memory),
      DENSENET_KEY("channels-last", "bool", false,
                   "NHWC weights and activations (memory naive only; faster convolutions on "
                   "some machines, see docs/BENCHMARKS.md)",
                   c.channels_last = read_bool(key, node), c.channels_last),
      DENSENET_KEY("memory-budget", "size", false,
                   "bytes for memory: auto, e.g. 4GiB (0: 80% of the free memory)",
                   c.memory_budget = read_size(key, node), c.memory_budget),
      // Optimisation.
      DENSENET_KEY("batch-size", "int", false, "images per optimiser step",
                   c.batch_size = read_int(key, node), c.batch_size),
      DENSENET_KEY("num-batch-splits", "int", false,
                   "process each batch in this many pieces (gradient accumulation)",
                   c.num_batch_splits = read_int(key, node), c.num_batch_splits),
      DENSENET_KEY("test-batch-size", "int", false, "images per evaluation batch",
                   c.test_batch_size = read_int(key, node), c.test_batch_size),
      DENSENET_KEY("epochs", "int", false, "passes over the training set",
                   c.epochs = read_int(key, node), c.epochs),
      DENSENET_KEY("lr", "real", false, "peak learning rate", c.lr = read_real(key, node),
                   real_node(c.lr)),
      DENSENET_KEY("lr-type", "string", false, "multistep | cosine | triangle | step",
                   c.lr_type = read_string(key, node), c.lr_type),
      DENSENET_KEY(
          "milestones", "real list", false,
          "epochs where multistep divides the lr by 10 (default: 0.5, 0.75 of epochs)",
          c.milestones = read_list<double>(key, node, read_real),
          c.milestones.empty() ? YAML::Node(YAML::NodeType::Null) : list_node(c.milestones)),
      DENSENET_KEY("warmup-epochs", "real", false, "linear warm-up length in epochs",
                   c.warmup_epochs = read_real(key, node), real_node(c.warmup_epochs)),
      DENSENET_KEY("optimizer", "string", false, "sgd | adamw",
                   c.optimizer = read_string(key, node), c.optimizer),
      DENSENET_KEY("momentum", "real", false, "SGD momentum (AdamW: beta1)",
                   c.momentum = read_real(key, node), real_node(c.momentum)),
      DENSENET_KEY("nesterov", "bool", false, "Nesterov momentum (SGD)",
                   c.nesterov = read_bool(key, node), c.nesterov),
      DENSENET_KEY("weight-decay", "real", false, "L2 (SGD) or decoupled (AdamW) weight decay",
                   c.weight_decay = read_real(key, node), real_node(c.weight_decay)),
      DENSENET_KEY("no-weight-decay-on-norm", "bool", false,
                   "no weight decay on batch-norm parameters and biases",
                   c.no_weight_decay_on_norm = read_bool(key, node), c.no_weight_decay_on_norm),
      DENSENET_KEY("clip", "real", false,
                   "clip the gradient norm to this (0: off); after unscaling under loss-scale",
                   c.clip = read_real(key, node), real_node(c.clip)),
      DENSENET_KEY("amp", "string", false,
                   "none | fp16 | bf16: mixed precision (autocast) with float32 weights",
                   c.amp = read_string(key, node), c.amp),
      DENSENET_KEY("loss-scale", "string", false,
                   "auto | dynamic | none: scale the loss, skip steps with inf/NaN gradients "
                   "(auto: dynamic for amp fp16)",
                   c.loss_scale = read_string(key, node), c.loss_scale),
      DENSENET_KEY("loss-scale-init", "real", false,
                   "the dynamic loss scale's first value (torch GradScaler init_scale)",
                   c.loss_scale_init = read_real(key, node), real_node(c.loss_scale_init)),
      DENSENET_KEY("loss-scale-growth-interval", "int", false,
                   "clean steps before the dynamic loss scale doubles (GradScaler "
                   "growth_interval)",
                   c.loss_scale_growth_interval = read_int(key, node),
                   c.loss_scale_growth_interval),
      DENSENET_KEY("label-smoothing", "real", false, "cross-entropy label smoothing in [0, 1)",
                   c.label_smoothing = read_real(key, node), real_node(c.label_smoothing)),
      DENSENET_KEY("seed", "int", false, "seed of the weights, the shuffling and the augmentation",
                   c.seed = read_int(key, node), c.seed),
      with_aliases(
          DENSENET_KEY("pretrained", "string", false,
                       "fine-tune from these weights (any --weights file: torchvision's, a "
                       "checkpoint's model, safetensors); a classifier of another class count "
                       "is re-initialised",
                       c.pretrained = read_string(key, node), c.pretrained),
          {"initial-checkpoint"}),  // timm's train.py name
      DENSENET_KEY("model-ema", "bool", false,
                   "keep an exponential moving average of the weights (timm ModelEmaV3), "
                   "evaluated each epoch; best_ema.pth holds its best",
                   c.model_ema = read_bool(key, node), c.model_ema),
      DENSENET_KEY("model-ema-decay", "real", false,
                   "the EMA's decay per optimiser step, in [0, 1] (timm's default)",
                   c.model_ema_decay = read_real(key, node), real_node(c.model_ema_decay)),
      DENSENET_KEY("model-ema-warmup", "bool", false,
                   "warm the EMA's decay up: 1 - (1 + step)^(-2/3), capped at model-ema-decay",
                   c.model_ema_warmup = read_bool(key, node), c.model_ema_warmup),
      // The run.
      DENSENET_KEY("resume", "string", false, "run directory or checkpoint to continue",
                   c.resume = read_string(key, node), c.resume),
      DENSENET_KEY("test-only", "bool", false, "evaluate and stop",
                   c.test_only = read_bool(key, node), c.test_only),
      DENSENET_KEY("output-dir", "string", false,
                   "run directory (default: runs/<dataset>-<arch>-<date>-<time>)",
                   c.output_dir = read_string(key, node), c.output_dir),
      DENSENET_KEY("save-interval", "int", false, "epochs between numbered checkpoints (0: none)",
                   c.save_interval = read_int(key, node), c.save_interval),
      DENSENET_KEY("keep-checkpoints", "int", false, "numbered checkpoints kept (the newest)",
                   c.keep_checkpoints = read_int(key, node), c.keep_checkpoints),
      DENSENET_KEY("threads", "int", false, "compute threads (0: the machine's cores)",
                   c.threads = read_int(key, node), c.threads),
      DENSENET_KEY("device", "string", false, "cpu | cuda | cuda:N",
                   c.device = read_string(key, node), c.device),
      DENSENET_KEY("dist-backend", "string", false,
                   "auto | gloo | nccl: collectives of a data-parallel run (auto: gloo on CPU)",
                   c.dist_backend = read_string(key, node), c.dist_backend),
      DENSENET_KEY("dist-timeout", "real", false,
                   "seconds a data-parallel rank waits for the others (rendezvous, collectives)",
                   c.dist_timeout = read_real(key, node), real_node(c.dist_timeout)),
      DENSENET_KEY("dist-bucket-size", "size", false,
                   "bytes of gradients all-reduced together in a data-parallel run, e.g. 25MiB",
                   c.dist_bucket_size = read_size(key, node), c.dist_bucket_size),
      DENSENET_KEY("sync-bn", "bool", false,
                   "data-parallel runs: batch norms use the statistics of the global batch, as "
                   "one process with the whole batch would (torch.nn.SyncBatchNorm)",
                   c.sync_bn = read_bool(key, node), c.sync_bn),
      DENSENET_KEY("log-interval", "int", false,
                   "steps between progress lines when the output is not a terminal",
                   c.log_interval = read_int(key, node), c.log_interval),
      DENSENET_KEY("force", "bool", false, "overwrite an output directory that holds another run",
                   c.force = read_bool(key, node), c.force),
  };
  return keys;
}

#undef DENSENET_KEY

std::string normalize_key(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

const KeyAccess& find_key(const std::string& raw) {
  const std::string key = normalize_key(raw);
  for (const auto& access : table()) {
    const auto& aliases = access.key.aliases;
    if (access.key.name == key || std::find(aliases.begin(), aliases.end(), key) != aliases.end()) {
      return access;
    }
  }
  std::string closest;
  size_t best = 4;  // suggest only close spellings
  for (const auto& access : table()) {
    const size_t distance = edit_distance(key, access.key.name);
    if (distance < best) {
      best = distance;
      closest = access.key.name;
    }
  }
  TORCH_CHECK(false, "unknown config key '", raw, "'",
              closest.empty() ? std::string() : "; did you mean '" + closest + "'?");
}

// A command-line value as YAML: lists may be given bare ("6,12,24").
YAML::Node node_from_text(const ConfigKey& key, const std::string& text) {
  if (key.type == "string") return YAML::Node(text);
  std::string yaml = text;
  if (key.type.find("list") != std::string::npos && (text.empty() || text.front() != '[')) {
    // A flow sequence takes "2,2," and reads "2,,2" as a null item; a flag's list does neither.
    const bool empty_item = text.empty() || text.front() == ',' || text.back() == ',' ||
                            text.find(",,") != std::string::npos;
    TORCH_CHECK(!empty_item, "config key '", key.name, "': expected a comma-separated ",
                key.type == "int list" ? "list of integers such as 6,12,24,16"
                                       : "list of numbers such as 0.5,0.75",
                ", got '", text, "' (an empty item)");
    yaml = "[" + text + "]";
  }
  try {
    return YAML::Load(yaml);
  } catch (const YAML::Exception&) {
    TORCH_CHECK(false, "config key '", key.name, "': cannot read '", text, "' as ", key.type);
  }
}

void require(bool ok, const std::string& key, const std::string& what, const std::string& given) {
  TORCH_CHECK(ok, "config key '", key, "' ", what, ", got ", given);
}

void require_one_of(const std::string& key, const std::string& value,
                    const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string list;
  for (const auto& choice : choices) list += (list.empty() ? "" : ", ") + choice;
  TORCH_CHECK(false, "config key '", key, "': unknown value '", value, "': use one of ", list);
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    std::vector<ConfigKey> result;
    for (const auto& access : table()) result.push_back(access.key);
    return result;
  }();
  return keys;
}

void set_config_value(TrainConfig& config, const std::string& key, const std::string& text) {
  const KeyAccess& access = find_key(key);
  access.set(config, node_from_text(access.key, text));
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
    TORCH_CHECK(false, "'", source, "' is not a YAML file: ", error.msg, " at line ",
                error.mark.line + 1, ", column ", error.mark.column + 1);
  }
  std::vector<std::string> keys;
  if (root.IsNull()) return keys;  // an empty file sets nothing
  TORCH_CHECK(root.IsMap(), "'", source,
              "' must be a YAML mapping of config keys to values (e.g. 'epochs: 10'), not a ",
              root.IsSequence() ? "list" : "single value");
  for (const auto& item : root) {
    const std::string key = item.first.as<std::string>();
    try {
      const KeyAccess& access = find_key(key);
      TORCH_CHECK(std::find(keys.begin(), keys.end(), access.key.name) == keys.end(), "key '",
                  access.key.name, "' is given twice (the later would silently win)");
      access.set(config, item.second);
      keys.push_back(access.key.name);
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, source, ": ", error.what_without_backtrace());
    }
  }
  return keys;
}

std::vector<std::string> load_config_file(TrainConfig& config, const std::string& path) {
  std::error_code error;
  TORCH_CHECK(!std::filesystem::is_directory(path, error), "config file '", path,
              "' is a directory: give a YAML file such as configs/fashion-mnist.yaml");
  std::ifstream file(path);
  TORCH_CHECK(file.good(), "cannot read config file '", path, "': ", std::strerror(errno));
  std::stringstream text;
  text << file.rdbuf();
  return load_config_text(config, text.str(), path);
}

std::string config_to_yaml(const TrainConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& access : table()) {
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
  static const std::vector<std::string> keys = {
      "data",         "workers",         "resume",           "test-only",       "output-dir",
      "epochs",       "save-interval",   "keep-checkpoints", "threads",         "device",
      "log-interval", "force",           "max-eval-samples", "test-batch-size", "dist-backend",
      "dist-timeout", "dist-bucket-size"};
  return std::find(keys.begin(), keys.end(), normalize_key(key)) != keys.end();
}

std::string effective_config_value(const TrainConfig& config, const std::string& key) {
  const std::string name = normalize_key(key);
  static const std::vector<std::string> model_keys = {
      "growth-rate", "num-init-features", "bn-size", "compression",
      "drop-rate",   "block-config",      "stem"};
  if (name == "milestones") {  // empty: the paper's 50% and 75% of the epochs
    std::ostringstream out;
    const std::vector<double> milestones = effective_milestones(config);
    for (size_t i = 0; i < milestones.size(); ++i) out << (i == 0 ? "" : ",") << milestones[i];
    return out.str();
  }
  if (std::find(model_keys.begin(), model_keys.end(), name) == model_keys.end()) {
    return config_value(config, name);
  }
  DenseNetOptions options;
  try {
    options = model_options(config, 0, 0, config.input_size);
  } catch (const c10::Error&) {
    return config_value(config, name);  // not buildable: validate says why
  }
  std::ostringstream out;
  if (name == "growth-rate") out << options.effective_growth_rate();
  if (name == "num-init-features") out << options.num_init_features();
  if (name == "bn-size") out << options.bn_size();
  if (name == "compression") out << options.compression();
  if (name == "drop-rate") out << options.drop_rate();
  if (name == "stem") out << stem_name(options.effective_stem());
  if (name == "block-config") {
    for (size_t i = 0; i < options.block_config().size(); ++i) {
      out << (i == 0 ? "" : ",") << options.block_config()[i];
    }
  }
  return out.str();
}

void check_unchanged_on_resume(const TrainConfig& base, const TrainConfig& continued,
                               const std::string& key) {
  if (config_value(base, key) == config_value(continued, key)) return;
  const std::string has = effective_config_value(base, key);
  const std::string given = effective_config_value(continued, key);
  TORCH_CHECK(has == given, "cannot change '", normalize_key(key), "' when resuming: the run has ",
              has, ", given ", given, " (start a new run with --output-dir to train with it)");
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

void validate(const TrainConfig& c, bool check_model) {
  require_one_of("dataset", c.dataset,
                 {"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "synthetic"});
  try {
    preset_options(c.arch);  // checked with the other keys, before anything is read or written
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "config key 'arch': ", error.what_without_backtrace());
  }
  if (check_model) {
    try {
      // The architecture with its overrides, at the given input size (the dataset's channels
      // and classes are not known yet; they do not decide whether it can be built).
      plan_architecture(model_options(c, 0, 0, c.input_size));
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, "the model options: ", error.what_without_backtrace());
    }
  }
  require_one_of("memory", c.memory, {"naive", "efficient", "minimal", "auto"});
  require_one_of("lr-type", c.lr_type, {"multistep", "cosine", "triangle", "step"});
  require_one_of("optimizer", c.optimizer, {"sgd", "adamw"});
  if (!c.stem.empty()) require_one_of("stem", c.stem, {"cifar", "imagenet"});
  const auto text = [](auto value) {
    std::ostringstream out;
    out << value;
    return out.str();
  };
  require(c.input_size >= 0, "input-size", "must be >= 0 (0: the dataset's)", text(c.input_size));
  require(!c.channels_last || c.memory == "naive", "channels-last",
          "applies to memory naive only (the efficient and minimal stages keep NCHW channel "
          "planes); add --memory naive",
          "true with memory " + c.memory);
  require(c.valid_size >= 0, "valid-size", "must be >= 0", text(c.valid_size));
  require(c.max_train_samples >= 0, "max-train-samples", "must be >= 0 (0: all)",
          text(c.max_train_samples));
  require(c.max_eval_samples >= 0, "max-eval-samples", "must be >= 0 (0: all)",
          text(c.max_eval_samples));
  require(c.workers >= 0 && c.workers <= 256, "workers", "must be in [0, 256]", text(c.workers));
  require(c.color_jitter >= 0 && c.color_jitter < 1, "color-jitter", "must be in [0, 1)",
          text(c.color_jitter));
  require(c.lighting >= 0, "lighting", "must be >= 0", text(c.lighting));
  require(c.crop_padding >= 0 && c.crop_padding <= 64, "crop-padding", "must be in [0, 64]",
          text(c.crop_padding));
  require(c.hflip >= 0 && c.hflip <= 1, "hflip", "must be in [0, 1]", text(c.hflip));
  // Each pipeline takes only its own options: a key the run would ignore is a mistake.
  const bool resized_crop = c.dataset == "imagefolder";
  const bool pad_crop = c.dataset != "imagefolder" && c.dataset != "synthetic";
  require(!pad_crop || c.color_jitter == 0, "color-jitter",
          "applies to image folders (RandomResizedCrop pipeline), not to " + c.dataset,
          text(c.color_jitter));
  require(!pad_crop || c.lighting == 0, "lighting",
          "applies to image folders (RandomResizedCrop pipeline), not to " + c.dataset,
          text(c.lighting));
  require(!resized_crop || c.crop_padding == TrainConfig{}.crop_padding, "crop-padding",
          "applies to MNIST and CIFAR (RandomCrop pipeline), not to image folders",
          text(c.crop_padding));
  require(c.memory_budget >= 0, "memory-budget", "must be >= 0", text(c.memory_budget));
  require(c.batch_size >= 1, "batch-size", "must be >= 1", text(c.batch_size));
  require(c.num_batch_splits >= 1 && c.num_batch_splits <= c.batch_size, "num-batch-splits",
          "must be in [1, batch-size=" + text(c.batch_size) + "]", text(c.num_batch_splits));
  require(c.test_batch_size >= 1, "test-batch-size", "must be >= 1", text(c.test_batch_size));
  require(c.epochs >= 1 && c.epochs <= 100000, "epochs", "must be in [1, 100000]", text(c.epochs));
  require(c.lr > 0, "lr", "must be > 0", text(c.lr));
  for (const double milestone : c.milestones) {
    require(milestone > 0 && milestone <= static_cast<double>(c.epochs), "milestones",
            "must lie in (0, epochs=" + text(c.epochs) + "]", text(milestone));
  }
  require(std::adjacent_find(c.milestones.begin(), c.milestones.end(),
                             std::greater_equal<double>()) == c.milestones.end(),
          "milestones", "must be increasing", config_value(c, "milestones"));
  require(c.warmup_epochs >= 0 && c.warmup_epochs < static_cast<double>(c.epochs), "warmup-epochs",
          "must be in [0, epochs)", text(c.warmup_epochs));
  require(c.momentum >= 0 && c.momentum < 1, "momentum", "must be in [0, 1)", text(c.momentum));
  require(!c.nesterov || c.optimizer != "sgd" || c.momentum > 0, "nesterov",
          "needs momentum > 0 (set momentum or nesterov: false)", "true");
  require(c.weight_decay >= 0, "weight-decay", "must be >= 0", text(c.weight_decay));
  require(c.clip >= 0, "clip", "must be >= 0 (0: off)", text(c.clip));
  require_one_of("amp", c.amp, {"none", "fp16", "bf16"});
  require_one_of("loss-scale", c.loss_scale, {"auto", "dynamic", "none"});
  require(c.loss_scale != "dynamic" || c.amp != "none", "loss-scale",
          "dynamic applies to amp fp16 or bf16 runs (this run has amp none)", "dynamic");
  require(std::isfinite(c.loss_scale_init) && c.loss_scale_init > 0 &&
              c.loss_scale_init <= std::numeric_limits<float>::max(),
          "loss-scale-init", "must be a positive float32 number, e.g. 65536",
          text(c.loss_scale_init));
  require(c.loss_scale_growth_interval >= 1 &&
              c.loss_scale_growth_interval <= std::numeric_limits<int32_t>::max(),
          "loss-scale-growth-interval", "must be in [1, 2^31)", text(c.loss_scale_growth_interval));
  const TrainConfig defaults;
  const bool init_set = c.loss_scale_init != defaults.loss_scale_init;
  const bool interval_set = c.loss_scale_growth_interval != defaults.loss_scale_growth_interval;
  TORCH_CHECK(
      uses_loss_scaler(c) || (!init_set && !interval_set), "config key",
      init_set && interval_set ? "s 'loss-scale-init' and 'loss-scale-growth-interval' apply"
      : init_set               ? " 'loss-scale-init' applies"
                               : " 'loss-scale-growth-interval' applies",
      " to the dynamic loss scale only (this run has amp ", c.amp, ", loss-scale ", c.loss_scale,
      "): set loss-scale dynamic, or leave ", init_set && interval_set ? "them" : "it", " out");
  // Tried, not assumed: later LibTorch versions run float16 autocast on the CPU.
  TORCH_CHECK(c.amp != "fp16" || c.device != "cpu" ||
                  autocast_supported(c10::DeviceType::CPU, c10::ScalarType::Half),
              "config key 'amp': fp16 on device cpu needs float16 autocast, which this LibTorch (",
              TORCH_VERSION, ") has only on CUDA: use amp bf16 on the CPU, or device cuda");
  require(c.label_smoothing >= 0 && c.label_smoothing < 1, "label-smoothing", "must be in [0, 1)",
          text(c.label_smoothing));
  require(c.seed >= 0, "seed", "must be >= 0", text(c.seed));
  require(c.model_ema_decay >= 0 && c.model_ema_decay <= 1, "model-ema-decay", "must be in [0, 1]",
          text(c.model_ema_decay));
  const bool ema_key_set = c.model_ema_decay != defaults.model_ema_decay || c.model_ema_warmup;
  TORCH_CHECK(c.model_ema || !ema_key_set, "config key '",
              c.model_ema_warmup ? "model-ema-warmup" : "model-ema-decay",
              "' applies to the model EMA, which this run does not keep: add model-ema true, or "
              "leave it out");
  // Read once, at the start of a run (a resumed run has the weights in its checkpoint): a file
  // named but missing is a command-line mistake, found before anything runs.
  std::error_code error;
  TORCH_CHECK(c.pretrained.empty() || !c.resume.empty() ||
                  (std::filesystem::exists(c.pretrained, error) &&
                   !std::filesystem::is_directory(c.pretrained, error)),
              "config key 'pretrained': no such file '", c.pretrained, "'",
              std::filesystem::is_directory(c.pretrained, error)
                  ? " (it is a directory: give a weights file such as densenet121-a639ec97.pth)"
                  : "");
  require(c.save_interval >= 0, "save-interval", "must be >= 0 (0: no numbered checkpoints)",
          text(c.save_interval));
  require(c.keep_checkpoints >= 1, "keep-checkpoints", "must be >= 1", text(c.keep_checkpoints));
  require(c.threads >= 0 && c.threads <= 1024, "threads", "must be in [0, 1024] (0: all cores)",
          text(c.threads));
  require(c.log_interval >= 1, "log-interval", "must be >= 1", text(c.log_interval));
  require_one_of("dist-backend", c.dist_backend, {"auto", "gloo", "nccl"});
  require(c.dist_timeout > 0, "dist-timeout", "must be > 0 seconds", text(c.dist_timeout));
  require(c.dist_bucket_size >= 1, "dist-bucket-size", "must be >= 1 byte",
          text(c.dist_bucket_size));
  require(c.device == "cpu" || c.device == "cuda" ||
              std::regex_match(c.device, std::regex("cuda:[0-9]{1,3}")),
          "device", "must be cpu, cuda or cuda:N", "'" + c.device + "'");
  require(c.milestones.empty() || c.lr_type == "multistep", "milestones",
          "applies to lr-type multistep only (this run uses " + c.lr_type + ")",
          config_value(c, "milestones"));
  require(c.memory_budget == 0 || c.memory == "auto", "memory-budget",
          "is used by memory: auto only (this run uses memory " + c.memory + ")",
          config_value(c, "memory-budget"));
  require(c.dataset != "imagefolder" || !c.data.empty(), "data",
          "must name the image folder root (ROOT/train/CLASS/*.jpg) for dataset imagefolder",
          "nothing");
}

}  // namespace densenet::train
