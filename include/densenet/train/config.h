#pragma once

#include "densenet/model/options.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// Every setting of a training run. The keys (`--KEY` on the command line, `KEY:` in a YAML
/// file) are the original project's config.yaml names (wandering007/efficient-densenet-pytorch),
/// spelled with dashes; see `config_keys()` for the list, their types and help. The defaults are
/// configs/fashion-mnist.yaml: DenseNet-BC-40 on Fashion-MNIST, sized to train on a 2-core CPU
/// in under half an hour.
struct TrainConfig {
  // Data.
  std::string dataset =
      "fashion-mnist";     // fashion-mnist | mnist | cifar10 | cifar100 | imagefolder | synthetic
  std::string data;        // dataset root; empty = the dataset's default
  int64_t input_size = 0;  // pixels; 0 = the dataset's (28 MNIST, 32 CIFAR, 224 folders)
  int64_t valid_size = 0;  // images held out of the training set for validation
  int64_t max_train_samples = 0;  // 0 = all
  int64_t max_eval_samples = 0;   // 0 = all
  int64_t workers = 1;            // loader threads that decode and augment
  bool augment = true;            // random crop + flip (the dataset's training transform)
  int64_t crop_padding = 0;       // RandomCrop padding (MNIST, CIFAR; their configs use 4)
  double hflip = 0.5;             // horizontal flip probability (0 for digits)
  double color_jitter = 0;        // ColorJitter brightness, contrast, saturation factor (folders)
  double lighting = 0;            // AlexNet PCA lighting alpha std (folders)

  // Model: a preset and the original's per-field overrides.
  std::string arch = "densenet-bc-40";
  std::optional<int64_t> num_init_features;
  std::optional<int64_t> growth_rate;
  std::vector<int64_t> block_config;  // empty = the preset's
  std::optional<int64_t> bn_size;
  std::optional<double> compression;
  std::optional<double> drop_rate;
  std::string stem;                  // cifar | imagenet; empty = from the input size (<= 32: cifar)
  std::string memory = "efficient";  // naive | efficient | minimal | auto
  bool channels_last = false;        // NHWC weights and activations (memory naive only)
  int64_t memory_budget = 0;         // bytes, for memory: auto; 0 = 80% of what is available

  // Optimisation.
  int64_t batch_size = 64;
  int64_t num_batch_splits = 1;  // gradient accumulation: the batch in this many pieces
  int64_t test_batch_size = 256;
  int64_t epochs = 6;
  double lr = 0.1;
  std::string lr_type = "cosine";  // multistep | cosine | triangle | step
  std::vector<double> milestones;  // epochs; empty = 0.5 and 0.75 of `epochs` (the paper's)
  double warmup_epochs = 0;
  std::string optimizer = "sgd";  // sgd | adamw
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 1e-4;
  bool no_weight_decay_on_norm = false;  // no weight decay on batch-norm parameters and biases
  double clip = 0;                       // gradient-norm clipping threshold; 0 = off
  // Mixed precision (densenet/train/amp.h, densenet/train/loss_scaler.h).
  std::string amp = "none";         // none | fp16 | bf16: autocast dtype; weights stay float32
  std::string loss_scale = "auto";  // auto | dynamic | none; auto = dynamic for fp16 only
  double loss_scale_init = 65536;   // the dynamic scale's first value (GradScaler init_scale)
  int64_t loss_scale_growth_interval = 2000;  // clean steps before the scale doubles
  double label_smoothing = 0;
  int64_t seed = 1;
  // Fine-tuning: weights to start from (densenet/model/pretrained.h); empty = from scratch.
  std::string pretrained;
  // Model EMA (densenet/train/model_ema.h): timm's train.py keys and defaults.
  bool model_ema = false;           // keep an exponential moving average of the weights
  double model_ema_decay = 0.9998;  // its decay per optimiser step
  bool model_ema_warmup = false;    // ModelEmaV3's warm-up of the decay

  // The run.
  std::string resume;            // run directory or checkpoint file to continue
  bool test_only = false;        // evaluate (the resumed weights) and stop
  std::string output_dir;        // empty = runs/<dataset>-<arch>-<date>-<time>
  int64_t save_interval = 1;     // epochs between numbered checkpoints; 0 = none
  int64_t keep_checkpoints = 3;  // numbered checkpoints kept (newest)
  int64_t threads = 0;           // 0 = the machine's cores
  std::string device = "cpu";    // cpu | cuda | cuda:N
  // Data parallelism (WORLD_SIZE > 1; see densenet/distributed/).
  std::string dist_backend = "auto";             // auto | gloo | nccl
  double dist_timeout = 600;                     // seconds to wait for the other ranks
  int64_t dist_bucket_size = int64_t{25} << 20;  // bytes of gradients per all-reduce
  std::string dist_ifname;    // network interface of Gloo's connections ("": the host's name)
  bool sync_bn = false;       // batch-norm statistics of the global batch (torch SyncBatchNorm)
  int64_t log_interval = 50;  // steps between plain progress lines (not on a terminal)
  bool tensorboard = true;    // TensorBoard event files in the run directory (train/tensorboard.h)
  bool force = false;         // overwrite an output directory that holds another run
};

/// The numbers a numeric key accepts: an interval, either end open or unbounded.
struct ValueRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;
  std::string note;  // what a special value means, e.g. "(0: all)"

  bool contains(double value) const;
  /// "must be >= 1", "must be > 0 seconds", "must be in [0, 1)", "must be >= 0 (0: all)".
  std::string describe() const;
};

/// One configuration key: its spelling, what it takes and what it means. config_keys() is the one
/// table from which the YAML reader and writer, the command-line options of `densenet train` and
/// `densenet eval`, their --help, validate() and the resume check are all made.
struct ConfigKey {
  std::string name;    // "batch-size"
  std::string type;    // "int", "real", "bool", "string", "int list", "real list", "size"
  std::string help;    // one line; the allowed values and the default are added where shown
  bool model = false;  // changes the architecture (cannot change on --resume)
  /// May differ between a run and its resumption: it changes where and how fast the run
  /// computes, not what (epochs too: the schedule is re-derived and the change is reported).
  bool may_change_on_resume = false;
  bool eval = false;                 // `densenet eval` takes it (the data and the model)
  std::vector<std::string> choices;  // a string key's allowed values (empty: free text)
  std::optional<ValueRange> range;   // a number's allowed values (cross-key limits aside)
  std::vector<std::string> aliases;  // other spellings, e.g. timm's ("initial-checkpoint")
  /// The help line as --help shows it: help, then "(one of: a | b)" or the range.
  std::string described_help() const;
};

/// Every key, in the order `config.yaml` is written.
const std::vector<ConfigKey>& config_keys();

/// Sets `key` from its text (a command-line value or a YAML scalar/flow list: "0.1", "6,12,24",
/// "[6, 12]", "true", "512MiB"). Throws c10::ValueError naming the key and what it accepts, also
/// for an unknown key (with the closest known spelling). Every error of this file is a
/// c10::ValueError: a mistake in what the user asked for (the CLI exits with status 2).
void set_config_value(TrainConfig& config, const std::string& key, const std::string& text);

/// The key's current value as YAML text ("0.1", "[6, 12, 24, 16]", "null" when unset).
std::string config_value(const TrainConfig& config, const std::string& key);

/// Reads a YAML mapping of keys to values onto `config` (keys may use '-' or '_'; a list may be a
/// YAML list or the flag's bare form, `block-config: 6,12,24,16`) and returns the keys it set,
/// normalised ("batch-size"). Throws c10::ValueError naming the file and line for a file that is
/// not YAML, and the key for an unknown key or a bad value.
std::vector<std::string> load_config_file(TrainConfig& config, const std::string& path);

/// Parses YAML text as load_config_file does; `source` names it in errors.
std::vector<std::string> load_config_text(TrainConfig& config, const std::string& text,
                                          const std::string& source);

/// The key's canonical spelling ("batch_size" -> "batch-size"); throws for an unknown key.
std::string canonical_key(const std::string& key);

/// The whole configuration as YAML, every key (what the run directory's config.yaml holds).
std::string config_to_yaml(const TrainConfig& config);

/// Copies one key's value from `from` to `to`.
void copy_config_value(TrainConfig& to, const TrainConfig& from, const std::string& key);

/// The key called `name` ("batch_size" and "batch-size" alike). Throws c10::ValueError for an
/// unknown key, with the closest known spelling.
const ConfigKey& config_key(const std::string& name);

/// config_key(key).may_change_on_resume.
bool may_change_on_resume(const std::string& key);

/// Sets every key that `densenet eval` does not take (config_key(k).eval false: optimisation,
/// augmentation, the run directory) back to its default: a training checkpoint's configuration
/// evaluated on other data must not fail on, or be changed by, keys of its training alone.
void reset_training_only_keys(TrainConfig& config);

/// Throws c10::ValueError "cannot change 'KEY' when resuming: the run has X, given Y" when `key` is
/// built differently in `continued` than in `base` (the run with only the keys that may change
/// applied), compared as effective_config_value: the same model or schedule given in other
/// words passes.
void check_unchanged_on_resume(const TrainConfig& base, const TrainConfig& continued,
                               const std::string& key);

/// The configuration to continue a run: `saved` (the checkpoint's) with the keys in `given`
/// taken from `requested`. Throws c10::ValueError naming the key, both values and the way out when
/// a given key would change what the run computes.
TrainConfig resume_config(const TrainConfig& saved, const TrainConfig& requested,
                          const std::vector<std::string>& given);

/// Checks values that are wrong whatever the dataset (ranges, enumerations, combinations) and,
/// with `check_model`, that the preset with its overrides can be built at the input size;
/// throws c10::ValueError naming the key. `check_model` false: for a configuration whose model will
/// come from a checkpoint (eval), checked once it has.
void validate(const TrainConfig& config, bool check_model = true);

/// The preset `config.arch` with the config's architecture overrides (growth-rate,
/// block-config, bn-size, compression, drop-rate, num-init-features, stem), sized for data of
/// `channels` channels, `classes` classes and `input_size` pixels; a value <= 0 keeps the
/// preset's. Throws c10::Error for an unknown preset or an override out of range.
DenseNetOptions model_options(const TrainConfig& config, int64_t channels, int64_t classes,
                              int64_t input_size);

/// `key`'s value as the run uses it: for the architecture keys (growth-rate, num-init-features,
/// bn-size, compression, drop-rate, block-config, stem) the value of the model built from
/// `config` (an unset override is the preset's, e.g. bn-size 4 for a BC preset; block-config as
/// "6,6,6"); for every other key config_value. For comparing configurations and for messages:
/// never '~' for a value that has one.
std::string effective_config_value(const TrainConfig& config, const std::string& key);

/// Whether the run scales its loss dynamically: loss-scale dynamic, or auto with amp fp16.
bool uses_loss_scaler(const TrainConfig& config);

/// `milestones`, or the paper's default (0.5 and 0.75 of the epochs) when empty.
std::vector<double> effective_milestones(const TrainConfig& config);

}  // namespace densenet::train
