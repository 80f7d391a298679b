#include "densenet/train/amp.h"
#include "densenet/train/config.h"

#include <gtest/gtest.h>

#include <string>

#include "support/expect_error.h"

namespace densenet::train {
namespace {

TEST(TrainConfig, YamlKeysUseTheOriginalsNamesWithDashesOrUnderscores) {
  TrainConfig config;
  const auto keys = load_config_text(config,
                                     "batch-size: 256\n"
                                     "num_batch_splits: 2\n"
                                     "block-config: [6, 12, 24, 16]\n"
                                     "milestones: [30, 60]\n"
                                     "lr: 0.1\n"
                                     "nesterov: false\n"
                                     "memory-budget: 4GiB\n"
                                     "growth-rate: 32\n",
                                     "test.yaml");
  EXPECT_EQ(config.batch_size, 256);
  EXPECT_EQ(config.num_batch_splits, 2);
  EXPECT_EQ(config.block_config, (std::vector<int64_t>{6, 12, 24, 16}));
  EXPECT_EQ(config.milestones, (std::vector<double>{30, 60}));
  EXPECT_FALSE(config.nesterov);
  EXPECT_EQ(config.memory_budget, int64_t{4} << 30);
  EXPECT_EQ(config.growth_rate, 32);
  EXPECT_EQ(keys.size(), 8u);
  EXPECT_EQ(keys[1], "num-batch-splits");
}

TEST(TrainConfig, FlagTextAcceptsBareLists) {
  TrainConfig config;
  set_config_value(config, "block-config", "6,6,6");
  set_config_value(config, "milestones", "[5, 7.5]");
  set_config_value(config, "no-weight-decay-on-norm", "true");
  EXPECT_EQ(config.block_config, (std::vector<int64_t>{6, 6, 6}));
  EXPECT_EQ(config.milestones, (std::vector<double>{5, 7.5}));
  EXPECT_TRUE(config.no_weight_decay_on_norm);
}

TEST(TrainConfig, WrittenYamlReadsBackToTheSameConfiguration) {
  TrainConfig config;
  set_config_value(config, "block-config", "6,6,6");
  set_config_value(config, "growth-rate", "16");
  set_config_value(config, "lr", "0.05");
  set_config_value(config, "data", "/some where/with: colon");
  const std::string yaml = config_to_yaml(config);
  TrainConfig again;
  load_config_text(again, yaml, "config.yaml");
  EXPECT_EQ(config_to_yaml(again), yaml);
  EXPECT_EQ(again.data, "/some where/with: colon");
  EXPECT_FALSE(again.num_init_features.has_value());
  for (const ConfigKey& key : config_keys()) {
    EXPECT_NE(("\n" + yaml).find("\n" + key.name + ":"), std::string::npos) << key.name;
  }
}

TEST(TrainConfig, MistakesNameTheKeyAndWhatItAccepts) {
  TrainConfig config;
  EXPECT_ERROR_CONTAINS(set_config_value(config, "batchsize", "64"),
                        "unknown config key 'batchsize'; did you mean 'batch-size'?");
  EXPECT_ERROR_CONTAINS(set_config_value(config, "epochs", "ten"),
                        "config key 'epochs': expected an integer, got 'ten'");
  EXPECT_ERROR_CONTAINS(set_config_value(config, "lr", "fast"),
                        "config key 'lr': expected a number, got 'fast'");
  EXPECT_ERROR_CONTAINS(set_config_value(config, "nesterov", "maybe"),
                        "config key 'nesterov': expected true or false, got 'maybe'");
  EXPECT_ERROR_CONTAINS(set_config_value(config, "block-config", "6,x"),
                        "config key 'block-config': expected an integer, got 'x'");
  EXPECT_ERROR_CONTAINS(set_config_value(config, "memory-budget", "lots"),
                        "config key 'memory-budget': expected a size such as 4GiB");
  EXPECT_ERROR_CONTAINS(load_config_text(config, "epochs: [1, 2\n", "bad.yaml"),
                        "'bad.yaml' is not a YAML file");
  EXPECT_ERROR_CONTAINS(load_config_text(config, "- epochs\n- 3\n", "list.yaml"),
                        "'list.yaml' must be a YAML mapping of config keys to values");
  EXPECT_ERROR_CONTAINS(load_config_text(config, "learning-rate: 0.1\n", "x.yaml"),
                        "x.yaml: unknown config key 'learning-rate'");
  EXPECT_ERROR_CONTAINS(load_config_file(config, "/nonexistent/config.yaml"),
                        "cannot read config file '/nonexistent/config.yaml'");
}

TEST(TrainConfig, ValidateNamesTheKeyAndTheRange) {
  const auto invalid = [](const std::string& key, const std::string& value) {
    TrainConfig config;
    set_config_value(config, key, value);
    validate(config);
  };
  EXPECT_ERROR_CONTAINS(invalid("optimizer", "lamb"),
                        "config key 'optimizer': unknown value 'lamb': use one of sgd, adamw");
  EXPECT_ERROR_CONTAINS(invalid("lr-type", "poly"), "use one of multistep, cosine, triangle, step");
  EXPECT_ERROR_CONTAINS(invalid("dataset", "imagenet"), "unknown value 'imagenet'");
  EXPECT_ERROR_CONTAINS(invalid("batch-size", "0"), "'batch-size' must be >= 1, got 0");
  EXPECT_ERROR_CONTAINS(invalid("num-batch-splits", "100"),
                        "'num-batch-splits' must be in [1, batch-size=64], got 100");
  EXPECT_ERROR_CONTAINS(invalid("lr", "-1"), "'lr' must be in (0, 3.40282e+38], got -1");
  EXPECT_ERROR_CONTAINS(invalid("milestones", "5,3"), "'milestones' must be increasing");
  EXPECT_ERROR_CONTAINS(invalid("milestones", "2,2"), "'milestones' must be increasing");
  // Leading zeros are decimal, not YAML 1.1's octal.
  TrainConfig decimal;
  set_config_value(decimal, "epochs", "010");
  set_config_value(decimal, "block-config", "010,02");
  EXPECT_EQ(decimal.epochs, 10);
  EXPECT_EQ(decimal.block_config, (std::vector<int64_t>{10, 2}));
  EXPECT_ERROR_CONTAINS(invalid("epochs", "08x"), "config key 'epochs': expected an integer");
  // A flag's list has no empty items (YAML's flow sequence would take "2,2," and null in "2,,2").
  for (const char* text : {"", "2,2,", "2,,2", ",2"}) {
    EXPECT_ERROR_CONTAINS(invalid("block-config", text),
                          "config key 'block-config': expected a comma-separated list of integers "
                          "such as 6,12,24,16, got '" +
                              std::string(text) + "' (an empty item)");
  }
  EXPECT_ERROR_CONTAINS(invalid("milestones", "3,"), "list of numbers such as 30,60, got '3,'");
  EXPECT_ERROR_CONTAINS(invalid("milestones", "50"),
                        "'milestones' must be epochs in [1, epochs=6]");
  EXPECT_ERROR_CONTAINS(invalid("hflip", "1.5"), "'hflip' must be in [0, 1], got 1.5");
  EXPECT_ERROR_CONTAINS(invalid("crop-padding", "-1"), "'crop-padding' must be in [0, 64], got -1");
  EXPECT_ERROR_CONTAINS(invalid("label-smoothing", "1"), "'label-smoothing' must be in [0, 1)");
  EXPECT_ERROR_CONTAINS(invalid("device", "tpu"), "'device' must be cpu, cuda or cuda:N");
  EXPECT_ERROR_CONTAINS(invalid("amp", "fp32x"),
                        "config key 'amp': unknown value 'fp32x': use one of none, fp16, bf16");
  EXPECT_ERROR_CONTAINS(invalid("loss-scale", "static"),
                        "'loss-scale': unknown value 'static': use one of auto, dynamic, none");
  EXPECT_ERROR_CONTAINS(invalid("loss-scale", "dynamic"),
                        "'loss-scale' dynamic applies to amp fp16 or bf16 runs");
}

// amp and its loss scale: auto scales fp16 only, dynamic is refused without amp, and the
// scale's settings without a dynamic scale are refused rather than ignored.
TEST(TrainConfig, LossScaleFollowsAmp) {
  const auto config = [](const std::string& yaml) {
    TrainConfig c;
    load_config_text(c, yaml, "x.yaml");
    validate(c);
    return c;
  };
  EXPECT_FALSE(uses_loss_scaler(config("")));
  EXPECT_FALSE(uses_loss_scaler(config("amp: bf16\n")));
  EXPECT_TRUE(uses_loss_scaler(config("amp: bf16\nloss-scale: dynamic\n")));
  EXPECT_FALSE(uses_loss_scaler(config("amp: fp16\nloss-scale: none\ndevice: cuda\n")));
  EXPECT_TRUE(uses_loss_scaler(config("amp: fp16\ndevice: cuda\n")));
  EXPECT_NO_THROW(
      config("amp: bf16\nloss-scale: dynamic\nloss-scale-init: 1024\n"
             "loss-scale-growth-interval: 10\n"));
  // The refusal names the keys that were set, and only those.
  EXPECT_ERROR_CONTAINS(config("amp: bf16\nloss-scale-init: 1024\n"),
                        "config key 'loss-scale-init' applies to the dynamic loss scale only "
                        "(this run has amp bf16, loss-scale auto): set loss-scale dynamic, or "
                        "leave it out");
  EXPECT_ERROR_CONTAINS(config("loss-scale-init: 1024\nloss-scale-growth-interval: 10\n"),
                        "config keys 'loss-scale-init' and 'loss-scale-growth-interval' apply "
                        "to the dynamic loss scale only (this run has amp none, loss-scale auto)");
  EXPECT_ERROR_CONTAINS(config("amp: bf16\nloss-scale: dynamic\nloss-scale-init: 1e39\n"),
                        "'loss-scale-init' must be a positive float32 number");
  EXPECT_ERROR_CONTAINS(config("amp: bf16\nloss-scale: dynamic\nloss-scale-growth-interval: 0\n"),
                        "'loss-scale-growth-interval' must be in [1, 2^31)");
  // float16 on the CPU: refused where this LibTorch's CPU autocast cannot run it.
  if (!autocast_supported(c10::DeviceType::CPU, c10::ScalarType::Half)) {
    EXPECT_ERROR_CONTAINS(config("amp: fp16\n"),
                          "config key 'amp': fp16 on device cpu needs float16 autocast");
  }
  EXPECT_TRUE(autocast_supported(c10::DeviceType::CPU, c10::ScalarType::BFloat16));
}

TEST(TrainConfig, MilestonesDefaultToThePapersHalfAndThreeQuarters) {
  TrainConfig config;
  config.epochs = 300;
  EXPECT_EQ(effective_milestones(config), (std::vector<double>{150, 225}));
}

TEST(TrainConfig, ResumeKeepsWhatTheRunComputes) {
  TrainConfig saved;
  saved.epochs = 10;
  TrainConfig requested;
  requested.epochs = 20;
  requested.threads = 1;
  requested.lr = 0.5;
  const TrainConfig merged = resume_config(saved, requested, {"epochs", "threads"});
  EXPECT_EQ(merged.epochs, 20);
  EXPECT_EQ(merged.threads, 1);
  EXPECT_EQ(merged.lr, saved.lr);  // not given: the run's own
  EXPECT_ERROR_CONTAINS(resume_config(saved, requested, {"lr"}),
                        "cannot change 'lr' when resuming: the run has 0.1, given 0.5");
}

}  // namespace
}  // namespace densenet::train

namespace densenet::train {
namespace {

// configs/fashion-mnist.yaml is what `densenet train` does with no arguments, and every shipped
// config loads and validates.
TEST(TrainConfig, ShippedConfigsLoadAndTheDefaultIsFashionMnist) {
  TrainConfig from_file;
  load_config_file(from_file, std::string(DENSENET_CONFIG_DIR) + "/fashion-mnist.yaml");
  EXPECT_EQ(config_to_yaml(from_file), config_to_yaml(TrainConfig{}));
  for (const char* name : {"fashion-mnist-bc100", "mnist", "cifar10", "cifar100", "imagenet"}) {
    TrainConfig config;
    load_config_file(config, std::string(DENSENET_CONFIG_DIR) + "/" + name + ".yaml");
    EXPECT_NO_THROW(validate(config)) << name;
  }
  TrainConfig imagenet;
  load_config_file(imagenet, std::string(DENSENET_CONFIG_DIR) + "/imagenet.yaml");
  EXPECT_EQ(imagenet.arch, "densenet121");
  EXPECT_EQ(imagenet.batch_size, 256);
  EXPECT_EQ(imagenet.epochs, 90);
  EXPECT_EQ(imagenet.lr_type, "step");
}

}  // namespace
}  // namespace densenet::train

namespace densenet::train {
namespace {

TEST(TrainConfig, RefusesDuplicateKeysAndKeysTheRunWouldIgnore) {
  TrainConfig config;
  EXPECT_ERROR_CONTAINS(load_config_text(config, "seed: 5\nseed: 7\n", "dup.yaml"),
                        "dup.yaml: key 'seed' is given twice");
  const auto invalid = [](const std::string& yaml) {
    TrainConfig c;
    load_config_text(c, yaml, "x.yaml");
    validate(c);
  };
  EXPECT_ERROR_CONTAINS(invalid("lr-type: cosine\nmilestones: [3, 5]\n"),
                        "'milestones' applies to lr-type multistep only");
  EXPECT_ERROR_CONTAINS(invalid("memory: efficient\nmemory-budget: 1GiB\n"),
                        "'memory-budget' is used by memory: auto only");
  EXPECT_ERROR_CONTAINS(invalid("device: cuda:abc\n"), "'device' must be cpu, cuda or cuda:N");
  // Each augmentation pipeline refuses the other's options rather than ignore them.
  EXPECT_ERROR_CONTAINS(invalid("dataset: cifar10\ncolor-jitter: 0.4\n"),
                        "'color-jitter' applies to image folders (RandomResizedCrop pipeline), not "
                        "to cifar10, got 0.4");
  EXPECT_ERROR_CONTAINS(invalid("dataset: mnist\nlighting: 0.1\n"),
                        "'lighting' applies to image folders");
  EXPECT_ERROR_CONTAINS(invalid("dataset: imagefolder\ncrop-padding: 4\n"),
                        "'crop-padding' applies to MNIST and CIFAR (RandomCrop pipeline), not to "
                        "image folders, got 4");
  EXPECT_NO_THROW(invalid("dataset: synthetic\ncrop-padding: 4\ncolor-jitter: 0.2\n"));
  EXPECT_ERROR_CONTAINS(set_config_value(config, "memory-budget", "99999999999999999999999"),
                        "expected a size such as 4GiB");
}

// pretrained is also timm's initial-checkpoint (one key, two spellings); a missing file is named
// before anything runs, except on resume, which does not read it. The model-ema keys follow
// timm's train.py and its defaults, and refuse to be given without model-ema.
TEST(TrainConfig, PretrainedAndModelEmaKeys) {
  for (const char* yaml :
       {"pretrained: a.pth\n", "initial-checkpoint: a.pth\n", "initial_checkpoint: a.pth\n"}) {
    TrainConfig config;
    EXPECT_EQ(load_config_text(config, yaml, "x.yaml"), std::vector<std::string>{"pretrained"});
    EXPECT_EQ(config.pretrained, "a.pth");
  }
  TrainConfig config;
  set_config_value(config, "initial-checkpoint", "b.pth");
  EXPECT_EQ(config.pretrained, "b.pth");
  EXPECT_ERROR_CONTAINS(validate(config), "config key 'pretrained': no such file 'b.pth'");
  config.resume = "runs/x";
  EXPECT_NO_THROW(validate(config));
  EXPECT_ERROR_CONTAINS(
      load_config_text(config, "pretrained: a.pth\ninitial-checkpoint: b.pth\n", "dup.yaml"),
      "key 'pretrained' is given twice");

  const TrainConfig defaults;
  EXPECT_FALSE(defaults.model_ema);
  EXPECT_EQ(defaults.model_ema_decay, 0.9998);
  EXPECT_FALSE(defaults.model_ema_warmup);
  TrainConfig ema;
  load_config_text(ema, "model-ema: true\nmodel-ema-decay: 0.999\nmodel-ema-warmup: true\n",
                   "ema.yaml");
  EXPECT_NO_THROW(validate(ema));
  ema.model_ema = false;
  EXPECT_ERROR_CONTAINS(validate(ema), "config key 'model-ema-warmup' applies to the model EMA");
  ema.model_ema = true;
  ema.model_ema_decay = -0.1;
  EXPECT_ERROR_CONTAINS(validate(ema), "'model-ema-decay' must be in [0, 1], got -0.1");
}

}  // namespace
}  // namespace densenet::train

namespace densenet::train {
namespace {

// A list key in a YAML file takes the flag's bare form too ("6,12,24,16", a single "5"), which
// the error messages suggest; an empty item is refused there as on the command line.
TEST(TrainConfig, YamlListsTakeTheFlagsBareForm) {
  TrainConfig config;
  load_config_text(config, "block-config: 6,12,24,16\nmilestones: 5,7.5\n", "bare.yaml");
  EXPECT_EQ(config.block_config, (std::vector<int64_t>{6, 12, 24, 16}));
  EXPECT_EQ(config.milestones, (std::vector<double>{5, 7.5}));
  load_config_text(config, "block-config: 4\nmilestones: 3\n", "one.yaml");
  EXPECT_EQ(config.block_config, (std::vector<int64_t>{4}));
  EXPECT_EQ(config.milestones, (std::vector<double>{3}));
  EXPECT_ERROR_CONTAINS(load_config_text(config, "block-config: 6,,12\n", "gap.yaml"),
                        "gap.yaml: config key 'block-config': expected a comma-separated list of "
                        "integers such as 6,12,24,16, got '6,,12' (an empty item)");
}

// A new user's mistakes (trial report): each a c10::ValueError (exit 2) naming the key or file.
TEST(TrainConfig, NewUsersMistakesNameTheKey) {
  const auto invalid = [](const std::string& yaml) {
    TrainConfig config;
    load_config_text(config, yaml, "user.yaml");
    validate(config);
  };
  // A stream read "16EiB" and "8EiB" as 0 (80% of the free memory).
  for (const char* size : {"16EiB", "8EiB", "5EiB"}) {
    EXPECT_THROW(invalid(std::string("memory: auto\nmemory-budget: ") + size + "\n"),
                 c10::ValueError);
    EXPECT_ERROR_CONTAINS(invalid(std::string("memory: auto\nmemory-budget: ") + size + "\n"),
                          "config key 'memory-budget': expected a size such as 4GiB, 512MiB or a "
                          "byte count, at most 4EiB, got '" +
                              std::string(size) + "'");
  }
  // lr, weight-decay and clip go into float32 tensors: 1e300 was LibTorch's overflow error.
  for (const char* key : {"lr", "weight-decay", "clip"}) {
    EXPECT_THROW(invalid(std::string(key) + ": 1e300\n"), c10::ValueError);
    EXPECT_ERROR_CONTAINS(invalid(std::string(key) + ": 1e300\n"),
                          "'" + std::string(key) + "' must be in ");
  }
  EXPECT_NO_THROW(invalid("lr: 1e30\nclip: 1e38\n"));
  EXPECT_ERROR_CONTAINS(invalid("dataset: imagefolder\ndata: /d\nlighting: 1e300\n"),
                        "'lighting' must be in [0, 1]");
  EXPECT_NO_THROW(invalid("dataset: imagefolder\ndata: /d\nlighting: 0.1\n"));
  // A complex key was yaml-cpp's bare "bad conversion", a c10::Error-less std::exception.
  EXPECT_THROW(invalid("? [a]\n: 1\n"), c10::ValueError);
  EXPECT_ERROR_CONTAINS(invalid("? [a]\n: 1\n"),
                        "'user.yaml': a config key must be a name such as 'epochs', got a list");
  EXPECT_ERROR_CONTAINS(invalid("? {a: 1}\n: 1\n"), "got a mapping");
  // Found by Schedule as a c10::Error (exit 1) before.
  EXPECT_THROW(invalid("lr-type: triangle\nwarmup-epochs: 0.5\n"), c10::ValueError);
  // Milestones are absolute epochs: 0.5,0.75 would drop lr twice within epoch 1.
  EXPECT_ERROR_CONTAINS(invalid("lr-type: multistep\nmilestones: [0.5, 0.75]\n"),
                        "'milestones' must be epochs in [1, epochs=6], e.g. 30,60");
  EXPECT_NO_THROW(invalid("lr-type: multistep\nmilestones: [1, 4.5]\n"));
  // [] is --block-config "": a mistake, not the preset's default.
  for (const char* key : {"block-config", "milestones"}) {
    EXPECT_ERROR_CONTAINS(invalid(std::string(key) + ": []\n"),
                          "config key '" + std::string(key) + "': expected a non-empty list");
  }
  EXPECT_EQ(config_value(TrainConfig{}, "dist-timeout"), "600");
  // It becomes integer milliseconds: 1e300 s overflowed int64.
  EXPECT_ERROR_CONTAINS(invalid("dist-timeout: 1e300\n"), "'dist-timeout' must be in (0, 1e+07]");
}

// The table says each key's role: the keys that may change on resume, the ones eval takes, the
// architecture's; a mistake in a config is a c10::ValueError (the CLI's usage error).
TEST(TrainConfig, TheKeyTableSaysEachKeysRole) {
  EXPECT_TRUE(config_key("epochs").may_change_on_resume);
  EXPECT_FALSE(config_key("lr").may_change_on_resume);
  EXPECT_TRUE(config_key("growth-rate").model);
  EXPECT_TRUE(config_key("growth_rate").eval);
  EXPECT_FALSE(config_key("crop-padding").eval);
  EXPECT_EQ(config_key("optimizer").choices, (std::vector<std::string>{"sgd", "adamw"}));
  EXPECT_NE(config_key("optimizer").described_help().find("(sgd | adamw)"), std::string::npos);
  TrainConfig config;
  config.crop_padding = 4;
  config.amp = "bf16";
  config.growth_rate = 8;
  reset_training_only_keys(config);
  EXPECT_EQ(config.crop_padding, 0);
  EXPECT_EQ(config.amp, "none");
  EXPECT_EQ(config.growth_rate, 8);
  TrainConfig bad;
  bad.batch_size = 0;
  EXPECT_THROW(validate(bad), c10::ValueError);
}

}  // namespace
}  // namespace densenet::train
