// `densenet eval`: loss, top-1 and top-5 of any weights on a dataset's evaluation split.
#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/image.h"
#include "densenet/io/weights.h"
#include "densenet/train/config.h"
#include "densenet/train/trainer.h"
#include "densenet/util/heap.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace densenet::cli {
namespace {

// The config keys that select the data and the model; eval takes them with train's spelling.
const std::vector<std::string>& eval_keys() {
  static const std::vector<std::string> keys = {
      "dataset",          "data",         "input-size", "valid-size",
      "max-eval-samples", "workers",      "arch",       "num-init-features",
      "growth-rate",      "block-config", "bn-size",    "compression",
      "drop-rate",        "stem",         "memory",     "threads",
      "device",           "seed"};
  return keys;
}

struct EvalArguments {
  ModelArguments refused;  // --depth, --efficient, --small-inputs
  std::string weights;
  int64_t batch_size = 256;
  bool json = false;
  std::map<std::string, std::string> values;
};

int run_eval(const EvalArguments& args, const CLI::App& command) {
  refuse_original_spellings(args.refused);
  train::TrainConfig requested;
  std::vector<std::string> given;
  try {
    for (const std::string& key : eval_keys()) {
      if (command.get_option("--" + key)->count() == 0) continue;
      train::set_config_value(requested, key, args.values.at(key));
      given.push_back(key);
    }
    train::validate(requested, /*check_model=*/false);  // a training checkpoint brings its own
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  requested.test_batch_size = args.batch_size;
  given.push_back("test-batch-size");
  keep_freed_memory();
  std::ostream& out = args.json ? std::cerr : std::cout;
  train::EvalResult result;
  try {
    result = train::evaluate_weights(requested, given, args.weights, out);
  } catch (const c10::ValueError& error) {  // an option that contradicts the checkpoint
    throw UsageError(error.what_without_backtrace());
  }
  if (args.json) {
    nlohmann::json json = {{"weights", args.weights}, {"loss", result.loss},
                           {"top1", result.top1},     {"top5", result.top5},
                           {"images", result.images}, {"seconds", result.seconds}};
    std::cout << json.dump() << std::endl;
  }
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArguments>();
  auto self = std::make_shared<CLI::App*>(nullptr);
  CLI::App* command = add_command(
      app, "eval", "loss, top-1 and top-5 accuracy of weights on a dataset's test split",
      [args, self] { return run_eval(*args, **self); });
  *self = command;
  command
      ->add_option("--weights", args->weights,
                   "weights: a training checkpoint (its model and data settings are used), a "
                   "torchvision, gpleiss or wandering007 .pth, or .safetensors")
      ->type_name("FILE")
      ->required();
  command->add_option("--batch-size", args->batch_size, "images per evaluation batch")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  command->add_flag("--json", args->json, "print the result as one JSON object");
  add_refused_spellings(*command, args->refused);
  command->footer(wrapped(std::string(checkpoint_format_limits()) + " " + image_format_limits()));
  for (const train::ConfigKey& key : train::config_keys()) {
    bool wanted = false;
    for (const std::string& name : eval_keys()) wanted = wanted || name == key.name;
    if (!wanted) continue;
    command->add_option("--" + key.name, args->values[key.name], key.help)
        ->type_name(key.type == "int"                                   ? "INT"
                    : key.type == "real"                                ? "X"
                    : key.type == "int list" || key.type == "real list" ? "LIST"
                                                                        : "TEXT")
        ->group(key.model ? "Model" : "Data");
  }
}

}  // namespace densenet::cli
