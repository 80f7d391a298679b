// `densenet eval`: loss, top-1 and top-5 of any weights on a dataset's evaluation split.
#include "commands.h"
#include "config_options.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/image.h"
#include "densenet/io/weights.h"
#include "densenet/train/config.h"
#include "densenet/train/evaluate.h"
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
  for (const train::ConfigKey& key : train::config_keys()) {
    if (!key.eval || command.get_option("--" + key.name)->count() == 0) continue;
    train::set_config_value(requested, key.name, args.values.at(key.name));
    given.push_back(key.name);
  }
  train::validate(requested, /*check_model=*/false);  // a training checkpoint brings its own
  requested.test_batch_size = args.batch_size;
  given.push_back("test-batch-size");
  keep_freed_memory();
  std::ostream& out = args.json ? std::cerr : std::cout;
  const train::EvalResult result = train::evaluate_weights(requested, given, args.weights, out);
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
      ->check(integer_in(1, int64_t{1} << 20))
      ->capture_default_str();
  command->add_flag("--json", args->json, "print the result as one JSON object");
  add_refused_spellings(*command, args->refused);
  command->footer(wrapped(std::string(checkpoint_format_limits()) + " " + image_format_limits()));
  for (const train::ConfigKey& key : train::config_keys()) {
    if (key.eval) add_config_option(*command, key, args->values, key.model ? "Model" : "Data");
  }
}

}  // namespace densenet::cli
