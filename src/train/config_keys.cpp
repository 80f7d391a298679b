// The table of configuration keys: for each key its name, type, help, role (model, may change
// on resume, taken by eval), allowed values, and the code that reads and writes its value.
#include "train/config_table.h"

#include "densenet/model/overrides.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/util/edit_distance.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

namespace densenet::train::detail {
namespace {

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
  TORCH_CHECK_VALUE(false, "config key '", key, "': expected ", expected, ", got ", given);
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
  const char* const expected = "a size such as 4GiB, 512MiB or a byte count, at most 4EiB";
  if (!node.IsScalar()) bad_value(key, expected, node);
  if (node.Scalar() == "0") return 0;
  try {
    return parse_byte_size(node.Scalar());
  } catch (const c10::Error&) {
    bad_value(key, expected, node);
  }
}
std::string read_string(const std::string& key, const YAML::Node& node) {
  if (node.IsNull()) return "";
  return scalar_as<std::string>(key, node, "a string");
}

YAML::Node bare_list_node(const std::string& key, const std::string& type, const std::string& text);

// A list: a YAML sequence, or a scalar in the flag's bare form ("6,12,24,16", "5"), which is
// what `--block-config 6,12,24,16` takes and what the error messages suggest.
template <typename T, typename Read>
std::vector<T> read_list(const std::string& key, const std::string& type, const YAML::Node& node,
                         Read read) {
  if (node.IsNull()) return {};
  if (node.IsScalar())
    return read_list<T>(key, type, bare_list_node(key, type, node.Scalar()), read);
  if (!node.IsSequence()) bad_value(key, "a list such as [6, 12, 24, 16] or 6,12,24,16", node);
  // [] is what --block-config "" is: a mistake, not "the default" (leave the key out for that).
  if (node.size() == 0)
    bad_value(key, "a non-empty list (leave the key out for its default)", node);
  std::vector<T> values;
  for (const auto& element : node) values.push_back(read(key, element));
  return values;
}

// The shortest text that reads back as the same double (0.1, not yaml-cpp's 0.10000000000000001).
YAML::Node real_node(double value) {
  char text[32];
  // A whole number as such: 600, not %g's 6e+02.
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(text, sizeof(text), "%.0f", value);
    return YAML::Node(std::string(text));
  }
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

// A list in the flag's bare form, "6,12,24,16", as a YAML sequence. A flow sequence would take
// "2,2," and read "2,,2" as a null item; a flag's list does neither.
YAML::Node bare_list_node(const std::string& key, const std::string& type,
                          const std::string& text) {
  const bool empty_item = text.empty() || text.front() == ',' || text.back() == ',' ||
                          text.find(",,") != std::string::npos;
  TORCH_CHECK_VALUE(
      !empty_item, "config key '", key, "': expected a comma-separated ",
      type == "int list" ? "list of integers such as 6,12,24,16" : "list of numbers such as 30,60",
      ", got '", text, "' (an empty item)");
  try {
    return YAML::Load("[" + text + "]");
  } catch (const YAML::Exception&) {
    TORCH_CHECK_VALUE(false, "config key '", key, "': cannot read '", text, "' as ", type);
  }
}

#define DENSENET_KEY(NAME, TYPE, HELP, SET, GET)             \
  KeyAccess {                                                \
    describe_key(NAME, TYPE, HELP),                          \
        [](TrainConfig& c, const YAML::Node& node) {         \
          const std::string key = NAME;                      \
          SET;                                               \
        },                                                   \
        [](const TrainConfig& c) { return YAML::Node(GET); } \
  }

// An optional integer or real (an architecture override: null keeps the preset's value).
#define DENSENET_OPTIONAL(MEMBER, READ) \
  c.MEMBER = node.IsNull() ? std::nullopt : std::optional(READ(key, node))

ConfigKey describe_key(const char* name, const char* type, std::string help) {
  ConfigKey key;
  key.name = name;
  key.type = type;
  key.help = std::move(help);
  return key;
}

// The architecture keys say what the commands' --growth-rate etc. say: one text for both.
std::string override_help(const char* name) {
  return find_override_field(name)->help;
}

// [min, max] with either end open, and what a special value means.
ValueRange interval(double min, double max, bool min_open = false, bool max_open = false,
                    std::string note = "") {
  ValueRange range;
  range.min = min;
  range.max = max;
  range.min_open = min_open;
  range.max_open = max_open;
  range.note = std::move(note);
  return range;
}

// A value handed to a float32 tensor: at most float's largest (3.40282e+38).
ValueRange float32_above(double min) {
  return interval(min, std::numeric_limits<float>::max(), true);
}
ValueRange float32_at_least(double min, std::string note = "") {
  return interval(min, std::numeric_limits<float>::max(), false, false, std::move(note));
}

// The table in four parts, in the order config.yaml lists them.
using KeyList = std::vector<KeyAccess>;

void add_data_keys(KeyList& keys) {
  const auto add = [&](KeyAccess&& access) { keys.push_back(std::move(access)); };
  add(DENSENET_KEY("dataset", "string", "the training data", c.dataset = read_string(key, node),
                   c.dataset)
          .one_of({"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "synthetic"})
          .for_eval());
  add(DENSENET_KEY("data", "string",
                   "dataset root directory (default: the dataset's, e.g. "
                   "/usr/share/datasets/fashion-mnist)",
                   c.data = read_string(key, node), c.data)
          .for_eval()
          .may_change_on_resume());
  add(DENSENET_KEY("input-size", "int",
                   "image side in pixels (0: the dataset's: 28 MNIST, 32 CIFAR, 224 folders)",
                   c.input_size = read_int(key, node), c.input_size)
          .at_least(0, "(0: the dataset's)")
          .model());
  add(DENSENET_KEY("valid-size", "int",
                   "training images held out for validation (fixed by the seed); 0 = none",
                   c.valid_size = read_int(key, node), c.valid_size)
          .at_least(0)
          .for_eval());
  add(DENSENET_KEY("max-train-samples", "int",
                   "use only this many training images (0: all): the first ones, or "
                   "evenly spaced ones of an image folder (which lists them class by class)",
                   c.max_train_samples = read_int(key, node), c.max_train_samples)
          .at_least(0, "(0: all)"));
  add(DENSENET_KEY("max-eval-samples", "int",
                   "evaluate on only this many images (0: all; as max-train-samples)",
                   c.max_eval_samples = read_int(key, node), c.max_eval_samples)
          .at_least(0, "(0: all)")
          .for_eval()
          .may_change_on_resume());
  add(DENSENET_KEY("workers", "int", "loader threads that decode and augment",
                   c.workers = read_int(key, node), c.workers)
          .in(interval(0, 256))
          .for_eval()
          .may_change_on_resume());
  add(DENSENET_KEY("augment", "bool",
                   "the dataset's training augmentation: crop-padding, hflip, color-jitter, "
                   "lighting (false: none)",
                   c.augment = read_bool(key, node), c.augment));
  add(DENSENET_KEY("crop-padding", "int",
                   "pixels of zero padding before the random crop of MNIST and CIFAR images "
                   "(torchvision RandomCrop padding; 0: flip only)",
                   c.crop_padding = read_int(key, node), c.crop_padding)
          .in(interval(0, 64)));
  add(DENSENET_KEY("hflip", "real",
                   "probability of a horizontal flip of a training image (timm's hflip; 0 for "
                   "digits)",
                   c.hflip = read_real(key, node), real_node(c.hflip))
          .in(interval(0, 1)));
  add(DENSENET_KEY("color-jitter", "real",
                   "ColorJitter brightness/contrast/saturation factor for image folders (0: off)",
                   c.color_jitter = read_real(key, node), real_node(c.color_jitter))
          .in(interval(0, 1, false, true)));
  // At most 1: the largest ImageNet RGB eigenvalue is 0.2175, so alpha std 1 already shifts a
  // [0, 1] pixel by 0.22 per standard deviation, ten times the 0.1 of AlexNet, fb.resnet.torch
  // and torchvision's references; more only washes the images out (and diverges training).
  add(DENSENET_KEY("lighting", "real",
                   "AlexNet PCA lighting alpha std for image folders, e.g. 0.1 as AlexNet and "
                   "fb.resnet.torch (0: off; at most 1, ten times that)",
                   c.lighting = read_real(key, node), real_node(c.lighting))
          .in(interval(0, 1)));
}

void add_model_keys(KeyList& keys) {
  const auto add = [&](KeyAccess&& access) { keys.push_back(std::move(access)); };
  add(DENSENET_KEY("arch", "string",
                   "architecture preset (densenet info --list), e.g. densenet-bc-100",
                   c.arch = read_string(key, node), c.arch)
          .model());
  add(DENSENET_KEY("num-init-features", "int", override_help("num-init-features"),
                   DENSENET_OPTIONAL(num_init_features, read_int),
                   optional_node(c.num_init_features))
          .model());
  add(DENSENET_KEY("growth-rate", "int", override_help("growth-rate"),
                   DENSENET_OPTIONAL(growth_rate, read_int), optional_node(c.growth_rate))
          .model());
  add(DENSENET_KEY(
          "block-config", "int list", override_help("block-config"),
          c.block_config = read_list<int64_t>(key, "int list", node, read_int),
          c.block_config.empty() ? YAML::Node(YAML::NodeType::Null) : list_node(c.block_config))
          .model());
  add(DENSENET_KEY("bn-size", "int", override_help("bn-size"), DENSENET_OPTIONAL(bn_size, read_int),
                   optional_node(c.bn_size))
          .model());
  add(DENSENET_KEY("compression", "real", override_help("compression"),
                   DENSENET_OPTIONAL(compression, read_real), optional_node(c.compression))
          .model());
  add(DENSENET_KEY("drop-rate", "real", override_help("drop-rate"),
                   DENSENET_OPTIONAL(drop_rate, read_real), optional_node(c.drop_rate))
          .model());
  add(DENSENET_KEY("stem", "string", override_help("stem"), c.stem = read_string(key, node), c.stem)
          .one_of({"cifar", "imagenet"})
          .model());
  add(DENSENET_KEY("memory", "string",
                   "memory/speed trade of the dense blocks (auto: the fastest that fits "
                   "memory-budget)",
                   c.memory = read_string(key, node), c.memory)
          .one_of({"naive", "efficient", "minimal", "auto"})
          .for_eval());
  add(DENSENET_KEY("channels-last", "bool",
                   "NHWC weights and activations (memory naive only; faster convolutions on "
                   "some machines, see docs/BENCHMARKS.md)",
                   c.channels_last = read_bool(key, node), c.channels_last));
  add(DENSENET_KEY("memory-budget", "size",
                   "bytes for memory: auto, e.g. 4GiB (0: 80% of the free memory)",
                   c.memory_budget = read_size(key, node), c.memory_budget)
          .at_least(0));
}

void add_optimisation_keys(KeyList& keys) {
  const auto add = [&](KeyAccess&& access) { keys.push_back(std::move(access)); };
  add(DENSENET_KEY("batch-size", "int", "images per optimiser step",
                   c.batch_size = read_int(key, node), c.batch_size)
          .at_least(1));
  add(DENSENET_KEY("num-batch-splits", "int",
                   "process each batch in this many pieces (gradient accumulation)",
                   c.num_batch_splits = read_int(key, node), c.num_batch_splits));
  add(DENSENET_KEY("test-batch-size", "int", "images per evaluation batch",
                   c.test_batch_size = read_int(key, node), c.test_batch_size)
          .at_least(1)
          .may_change_on_resume());
  add(DENSENET_KEY("epochs", "int", "passes over the training set", c.epochs = read_int(key, node),
                   c.epochs)
          .in(interval(1, 100000))
          .may_change_on_resume());
  // lr, weight-decay and clip become float32 tensors (the optimiser's, the clip's): above
  // float's largest they cannot be converted.
  add(DENSENET_KEY("lr", "real", "peak learning rate", c.lr = read_real(key, node), real_node(c.lr))
          .in(float32_above(0)));
  add(DENSENET_KEY("lr-type", "string",
                   "learning-rate schedule: multistep divides lr by 10 at each of milestones; "
                   "step divides it by 10 every 30 epochs (the original's ImageNet schedule, "
                   "fixed); cosine anneals to 0; triangle is the original's 4 cycles",
                   c.lr_type = read_string(key, node), c.lr_type)
          .one_of({"multistep", "cosine", "triangle", "step"}));
  add(DENSENET_KEY(
      "milestones", "real list",
      "epochs (absolute, from 1) at which multistep divides lr by 10, e.g. 30,60 (default: "
      "50% and 75% of epochs)",
      c.milestones = read_list<double>(key, "real list", node, read_real),
      c.milestones.empty() ? YAML::Node(YAML::NodeType::Null) : list_node(c.milestones)));
  add(DENSENET_KEY("warmup-epochs", "real", "linear warm-up length in epochs",
                   c.warmup_epochs = read_real(key, node), real_node(c.warmup_epochs)));
  add(DENSENET_KEY("optimizer", "string", "the optimiser", c.optimizer = read_string(key, node),
                   c.optimizer)
          .one_of({"sgd", "adamw"}));
  add(DENSENET_KEY("momentum", "real", "SGD momentum (AdamW: beta1)",
                   c.momentum = read_real(key, node), real_node(c.momentum))
          .in(interval(0, 1, false, true)));
  add(DENSENET_KEY("nesterov", "bool", "Nesterov momentum (SGD)", c.nesterov = read_bool(key, node),
                   c.nesterov));
  add(DENSENET_KEY("weight-decay", "real", "L2 (SGD) or decoupled (AdamW) weight decay",
                   c.weight_decay = read_real(key, node), real_node(c.weight_decay))
          .in(float32_at_least(0)));
  add(DENSENET_KEY("no-weight-decay-on-norm", "bool",
                   "no weight decay on batch-norm parameters and biases",
                   c.no_weight_decay_on_norm = read_bool(key, node), c.no_weight_decay_on_norm));
  add(DENSENET_KEY("clip", "real",
                   "clip the gradient norm to this (0: off); after unscaling under loss-scale",
                   c.clip = read_real(key, node), real_node(c.clip))
          .in(float32_at_least(0, "(0: off)")));
  add(DENSENET_KEY("amp", "string", "mixed precision (autocast) with float32 weights",
                   c.amp = read_string(key, node), c.amp)
          .one_of({"none", "fp16", "bf16"}));
  add(DENSENET_KEY("loss-scale", "string",
                   "scale the loss, skip steps with inf/NaN gradients (auto: dynamic for amp "
                   "fp16)",
                   c.loss_scale = read_string(key, node), c.loss_scale)
          .one_of({"auto", "dynamic", "none"}));
  add(DENSENET_KEY("loss-scale-init", "real",
                   "the dynamic loss scale's first value (torch GradScaler init_scale)",
                   c.loss_scale_init = read_real(key, node), real_node(c.loss_scale_init)));
  add(DENSENET_KEY("loss-scale-growth-interval", "int",
                   "clean steps before the dynamic loss scale doubles (GradScaler "
                   "growth_interval)",
                   c.loss_scale_growth_interval = read_int(key, node),
                   c.loss_scale_growth_interval));
  add(DENSENET_KEY("label-smoothing", "real", "cross-entropy label smoothing",
                   c.label_smoothing = read_real(key, node), real_node(c.label_smoothing))
          .in(interval(0, 1, false, true)));
  add(DENSENET_KEY("seed", "int", "seed of the weights, the shuffling and the augmentation",
                   c.seed = read_int(key, node), c.seed)
          .at_least(0)
          .for_eval());
  add(DENSENET_KEY("pretrained", "string",
                   "fine-tune from these weights (any --weights file: torchvision's, a "
                   "checkpoint's model, safetensors); a classifier of another class count is "
                   "re-initialised",
                   c.pretrained = read_string(key, node), c.pretrained)
          .alias("initial-checkpoint"));  // timm's train.py name
  add(DENSENET_KEY("model-ema", "bool",
                   "keep an exponential moving average of the weights (timm ModelEmaV3), "
                   "evaluated each epoch; best_ema.pth holds its best",
                   c.model_ema = read_bool(key, node), c.model_ema));
  add(DENSENET_KEY("model-ema-decay", "real", "the EMA's decay per optimiser step (timm's default)",
                   c.model_ema_decay = read_real(key, node), real_node(c.model_ema_decay))
          .in(interval(0, 1)));
  add(DENSENET_KEY("model-ema-warmup", "bool",
                   "warm the EMA's decay up: 1 - (1 + step)^(-2/3), capped at model-ema-decay",
                   c.model_ema_warmup = read_bool(key, node), c.model_ema_warmup));
}

void add_run_keys(KeyList& keys) {
  const auto add = [&](KeyAccess&& access) { keys.push_back(std::move(access)); };
  add(DENSENET_KEY("resume", "string", "run directory or checkpoint to continue",
                   c.resume = read_string(key, node), c.resume)
          .may_change_on_resume());
  add(DENSENET_KEY("test-only", "bool", "evaluate and stop", c.test_only = read_bool(key, node),
                   c.test_only)
          .may_change_on_resume());
  add(DENSENET_KEY("output-dir", "string",
                   "run directory (default: runs/<dataset>-<arch>-<date>-<time>)",
                   c.output_dir = read_string(key, node), c.output_dir)
          .may_change_on_resume());
  add(DENSENET_KEY("save-interval", "int",
                   "epochs between numbered checkpoints checkpoint-NNN.pth (0: none; last.pth "
                   "is written every epoch regardless)",
                   c.save_interval = read_int(key, node), c.save_interval)
          .at_least(0, "(0: no numbered checkpoints)")
          .may_change_on_resume());
  add(DENSENET_KEY("keep-checkpoints", "int", "numbered checkpoints kept (the newest)",
                   c.keep_checkpoints = read_int(key, node), c.keep_checkpoints)
          .at_least(1)
          .may_change_on_resume());
  add(DENSENET_KEY("threads", "int", "compute threads", c.threads = read_int(key, node), c.threads)
          .in(interval(0, 1024, false, false, "(0: all cores)"))
          .for_eval()
          .may_change_on_resume());
  add(DENSENET_KEY("device", "string",
                   "cpu | cuda | cuda:N (data-parallel: cuda is cuda:LOCAL_RANK)",
                   c.device = read_string(key, node), c.device)
          .for_eval()
          .may_change_on_resume());
  add(DENSENET_KEY("dist-backend", "string",
                   "collectives of a data-parallel run (auto: gloo on CPU, nccl on CUDA)",
                   c.dist_backend = read_string(key, node), c.dist_backend)
          .one_of({"auto", "gloo", "nccl"})
          .may_change_on_resume());
  add(DENSENET_KEY("dist-timeout", "real",
                   "seconds a data-parallel rank waits for the others (rendezvous, each "
                   "collective): a rank lost, hung or cut off ends the run within dist-timeout "
                   "+ 15 s",
                   c.dist_timeout = read_real(key, node), real_node(c.dist_timeout))
          // Bounded: it becomes integer milliseconds (1e300 s would overflow int64).
          .in(interval(0, 1e7, true, false, "seconds (1e7: about 116 days)"))
          .may_change_on_resume());
  add(DENSENET_KEY("dist-bucket-size", "size",
                   "bytes of gradients all-reduced together in a data-parallel run, e.g. 25MiB",
                   c.dist_bucket_size = read_size(key, node), c.dist_bucket_size)
          .at_least(1, "byte")
          .may_change_on_resume());
  add(DENSENET_KEY("dist-ifname", "string",
                   "network interface of Gloo's connections, e.g. eth1 (empty: those "
                   "GLOO_SOCKET_IFNAME names, else the one of this host's name)",
                   c.dist_ifname = read_string(key, node), c.dist_ifname)
          .may_change_on_resume());
  add(DENSENET_KEY("sync-bn", "bool",
                   "data-parallel runs: batch norms use the statistics of the global batch, as "
                   "one process with the whole batch would (torch.nn.SyncBatchNorm)",
                   c.sync_bn = read_bool(key, node), c.sync_bn));
  add(DENSENET_KEY("log-interval", "int",
                   "steps between progress lines when the output is not a terminal",
                   c.log_interval = read_int(key, node), c.log_interval)
          .at_least(1)
          .may_change_on_resume());
  add(DENSENET_KEY("tensorboard", "bool",
                   "write TensorBoard event files into the run directory: train/ scalars every "
                   "log-interval steps, epoch/ scalars every epoch",
                   c.tensorboard = read_bool(key, node), c.tensorboard)
          .may_change_on_resume());
  add(DENSENET_KEY("force", "bool", "overwrite an output directory that holds another run",
                   c.force = read_bool(key, node), c.force)
          .may_change_on_resume());
}

KeyList make_table() {
  KeyList keys;
  add_data_keys(keys);
  add_model_keys(keys);
  add_optimisation_keys(keys);
  add_run_keys(keys);
  return keys;
}

#undef DENSENET_OPTIONAL
#undef DENSENET_KEY

}  // namespace

KeyAccess&& KeyAccess::model() && {
  key.model = true;
  key.eval = true;
  return std::move(*this);
}
KeyAccess&& KeyAccess::may_change_on_resume() && {
  key.may_change_on_resume = true;
  return std::move(*this);
}
KeyAccess&& KeyAccess::for_eval() && {
  key.eval = true;
  return std::move(*this);
}
KeyAccess&& KeyAccess::one_of(std::initializer_list<const char*> choices) && {
  key.choices.assign(choices.begin(), choices.end());
  return std::move(*this);
}
KeyAccess&& KeyAccess::alias(const char* name) && {
  key.aliases.emplace_back(name);
  return std::move(*this);
}
KeyAccess&& KeyAccess::in(ValueRange range) && {
  key.range = std::move(range);
  return std::move(*this);
}
KeyAccess&& KeyAccess::at_least(double min, std::string note) && {
  return std::move(*this).in(
      interval(min, std::numeric_limits<double>::infinity(), false, false, std::move(note)));
}
KeyAccess&& KeyAccess::above(double min, std::string note) && {
  return std::move(*this).in(
      interval(min, std::numeric_limits<double>::infinity(), true, false, std::move(note)));
}

const std::vector<KeyAccess>& key_table() {
  static const std::vector<KeyAccess> keys = make_table();
  return keys;
}

std::string normalize_key(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

const KeyAccess& find_key(const std::string& raw) {
  const std::string key = normalize_key(raw);
  for (const auto& access : key_table()) {
    const auto& aliases = access.key.aliases;
    if (access.key.name == key || std::find(aliases.begin(), aliases.end(), key) != aliases.end()) {
      return access;
    }
  }
  std::string closest;
  size_t best = 4;  // suggest only close spellings
  for (const auto& access : key_table()) {
    const size_t distance = edit_distance(key, access.key.name);
    if (distance < best) {
      best = distance;
      closest = access.key.name;
    }
  }
  TORCH_CHECK_VALUE(false, "unknown config key '", raw, "'",
                    closest.empty() ? std::string() : "; did you mean '" + closest + "'?");
}

YAML::Node node_from_text(const ConfigKey& key, const std::string& text) {
  if (key.type == "string") return YAML::Node(text);
  if (key.type.find("list") != std::string::npos && (text.empty() || text.front() != '[')) {
    return bare_list_node(key.name, key.type, text);
  }
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception&) {
    TORCH_CHECK_VALUE(false, "config key '", key.name, "': cannot read '", text, "' as ", key.type);
  }
}

}  // namespace densenet::train::detail
