#include "densenet/train/plan.h"

#include "densenet/distributed/process_group.h"
#include "densenet/io/pth_file.h"
#include "densenet/model/architecture.h"
#include "densenet/train/checkpointer.h"
#include "densenet/train/training_state.h"

#include "train/run_directory.h"
#include "train/run_setup.h"

#include <c10/util/Exception.h>
#include <torch/types.h>

#include <algorithm>
#include <filesystem>

namespace densenet::train {
namespace fs = std::filesystem;
namespace {

bool was_given(const TrainRequest& request, const std::string& key) {
  return !request.given ||
         std::find(request.given->begin(), request.given->end(), key) != request.given->end();
}

std::vector<std::string> every_key() {
  std::vector<std::string> names;
  for (const ConfigKey& key : config_keys()) names.push_back(key.name);
  return names;
}

// A resumed run continues under the checkpoint's configuration, in the directory where the
// checkpoint is now (a moved or copied run is written in its new place), unless another
// output-dir is given.
TrainConfig resumed_config(const TrainRequest& request, const std::string& resume_path) {
  const TrainConfig saved = saved_config(resume_path);
  TrainConfig config =
      resume_config(saved, request.config, request.given ? *request.given : every_key());
  if (!was_given(request, "output-dir") || config.output_dir.empty()) {
    const fs::path directory = fs::path(resume_path).parent_path();
    config.output_dir = directory.empty() ? "." : directory.string();
  }
  return config;
}

void check_world_size(const TrainConfig& config, int64_t world_size) {
  TORCH_CHECK_VALUE(config.batch_size % world_size == 0, "batch-size ", config.batch_size,
                    " is not divisible by the world size ", world_size,
                    ": batch-size is the global batch, split evenly over the ranks");
  TORCH_CHECK_VALUE(config.batch_size / world_size >= config.num_batch_splits, "num-batch-splits ",
                    config.num_batch_splits, " is more than each rank's ",
                    config.batch_size / world_size, " images of a batch (batch-size ",
                    config.batch_size, " over ", world_size, " ranks)");
}

}  // namespace

TrainPlan plan_training(const TrainRequest& request) {
  TrainPlan plan;
  plan.world_size = request.world_size;
  // An empty --resume (an unset shell variable, say) must not start a new run instead.
  TORCH_CHECK_VALUE(
      !request.given || !was_given(request, "resume") || !request.config.resume.empty(),
      "--resume needs a run directory or checkpoint, got an empty value");
  if (request.config.resume.empty()) {
    validate(request.config);
    plan.config = request.config;
  } else {
    plan.resume_path = Checkpointer::resolve(request.config.resume);
    plan.config = resumed_config(request, plan.resume_path);
    validate(plan.config);
  }
  TrainConfig& config = plan.config;
  TORCH_CHECK_VALUE(!config.test_only || !plan.resume_path.empty(),
                    "test-only evaluates a resumed run: give --resume DIR (or use 'densenet eval "
                    "--weights FILE' for any weights)");
  if (config.output_dir.empty()) config.output_dir = detail::default_run_dir(config);
  if (!config.test_only) check_run_dir(config.output_dir, config, plan.resume_path);
  check_world_size(config, plan.world_size);
  if (config.input_size > 0) {
    // At a given input size, before any rank starts (at the dataset's it is checked with the
    // model, once the data are open).
    const ArchitecturePlan architecture = plan_architecture(model_options(config, 0, 0, 0));
    check_batch_norm_values(architecture,
                            detail::smallest_piece(config, config.batch_size / plan.world_size,
                                                   config.num_batch_splits));
  }
  if (plan.world_size > 1 || request.data_parallel) {
    plan.backend = distributed::choose_backend(config.dist_backend, torch::Device(config.device));
  }
  return plan;
}

TrainConfig saved_config(const std::string& resume) {
  const std::string path = Checkpointer::resolve(resume);
  const TrainingState state = from_checkpoint(pth::read_checkpoint(path).root, path);
  TrainConfig config;
  load_config_text(config, state.config_yaml, path + " (its config)");
  return config;
}

}  // namespace densenet::train
