#include "train/run_setup.h"

#include "densenet/distributed/gpus.h"
#include "densenet/model/memory_plan.h"
#include "densenet/model/presets.h"
#include "densenet/model/pretrained.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/amp.h"
#include "densenet/train/memory_choice.h"
#include "densenet/util/machine.h"
#include "densenet/util/threads.h"

#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include <algorithm>

namespace densenet::train::detail {
namespace {

// The first `count` samples of a dataset (max-train-samples, max-eval-samples).
// `count` images of a dataset. An image folder lists its images class by class (torchvision's
// make_dataset order), so its first images would all be of the first classes: it gives evenly
// spaced ones, which cover its classes in proportion, as a torchvision user would expect of a
// subset (no file is read to find the labels). MNIST and CIFAR files are in no class order:
// they give their first images, as Subset(range(count)) would.
std::shared_ptr<data::Dataset> some(std::shared_ptr<data::Dataset> dataset, int64_t count,
                                    bool evenly_spaced) {
  const int64_t size = dataset->size();
  if (count <= 0 || count >= size) return dataset;
  std::vector<int64_t> indices(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    indices[static_cast<size_t>(i)] = evenly_spaced ? i * size / count : i;
  }
  const std::string description =
      dataset->describe() + (evenly_spaced ? ", " + std::to_string(count) + " evenly spaced"
                                           : ", first " + std::to_string(count));
  return data::subset(std::move(dataset), std::move(indices), description);
}

data::AugmentOptions augment_options(const TrainConfig& config) {
  data::AugmentOptions options;
  options.brightness = options.contrast = options.saturation = config.color_jitter;
  options.lighting = config.lighting;
  options.crop_padding = config.crop_padding;
  options.hflip = config.hflip;
  return options;
}

data::LoaderOptions loader_options(const TrainConfig& config, const torch::Device& device,
                                   bool training) {
  data::LoaderOptions options;
  options.batch_size = training ? config.batch_size : config.test_batch_size;
  options.shuffle = training;
  options.drop_last = training;
  options.workers = config.workers;
  options.seed = static_cast<uint64_t>(config.seed);
  options.pin_memory = device.is_cuda();
  return options;
}

// Rank `rank`'s part of the evaluation set: a contiguous block, the blocks disjoint and
// covering the set (torch's DistributedSampler would pad the set with duplicates).
std::shared_ptr<data::Dataset> eval_shard(std::shared_ptr<data::Dataset> eval_set, int64_t rank,
                                          int64_t world_size) {
  if (world_size == 1) return eval_set;
  const int64_t n = eval_set->size();
  TORCH_CHECK(n >= world_size, "the evaluation set has ", n, " images, fewer than the ", world_size,
              " ranks: give max-eval-samples >= ", world_size);
  const int64_t begin = n * rank / world_size, end = n * (rank + 1) / world_size;
  std::vector<int64_t> indices;
  for (int64_t i = begin; i < end; ++i) indices.push_back(i);
  const std::string description = eval_set->describe() + ", rank " + std::to_string(rank) +
                                  "'s images " + std::to_string(begin) + ".." +
                                  std::to_string(end - 1);
  return data::subset(std::move(eval_set), std::move(indices), description);
}

// Which stem the model has and why. Where the input size chose it and a preset's own stem
// differs (densenet121 at 32 pixels gets the 3x3 one), the weights no longer load strictly into
// torchvision's model, which the user should hear before training them.
std::string describe_stem(const TrainConfig& config, const DenseNetOptions& options) {
  const std::string stem = stem_name(options.effective_stem()) + " stem";
  if (!config.stem.empty()) return stem + " (stem " + config.stem + " given)";
  const std::string why = "input " + std::to_string(options.input_size()) +
                          (options.uses_small_stem() ? " <= " : " > ") +
                          std::to_string(DenseNetOptions::kLargestSmallStemInput) + " px";
  const DenseNetOptions preset = preset_options(config.arch);
  if (preset.effective_stem() == options.effective_stem()) return stem + " (" + why + ")";
  const std::string own = stem_name(preset.effective_stem());
  return stem + " (" + why + "; " + config.arch + "'s own is " + own +
         ", which torchvision's weights have: --stem " + own + " keeps it)";
}

// memory: auto picks a mode and the batch splits within the budget; a named mode is used as is.
std::string choose_memory_mode(const TrainConfig& config, const torch::Device& device,
                               int64_t local_batch, int64_t optimizer_copies, ModelSetup& setup) {
  if (config.memory != "auto") {
    setup.options.memory(parse_memory_mode(config.memory));
    return "memory: " + config.memory + ", predicted step peak " +
           format_bytes(predicted_step_bytes(
               plan_architecture(setup.options), setup.options.memory(), local_batch,
               setup.num_batch_splits, optimizer_copies, device.type(), parse_amp(config.amp)));
  }
  const int64_t budget = config.memory_budget > 0 ? config.memory_budget : default_memory_budget();
  const MemoryChoice choice = choose_memory(plan_architecture(setup.options), local_batch, budget,
                                            device.type(), optimizer_copies, parse_amp(config.amp));
  setup.options.memory(choice.mode);
  setup.num_batch_splits = std::max(setup.num_batch_splits, choice.num_batch_splits);
  return "memory: auto -> " + choice.reason;
}

}  // namespace

int64_t smallest_piece(const TrainConfig& config, int64_t local_batch, int64_t splits) {
  // torch's chunk: pieces of ceil(n / splits) images, the last one what is left.
  const int64_t piece = (local_batch + splits - 1) / splits;
  const int64_t last = local_batch - piece * ((local_batch - 1) / piece);
  const int64_t ranks = config.sync_bn ? config.batch_size / local_batch : 1;
  return std::min(piece, last) * ranks;  // sync-bn: the statistics of every rank's piece
}

torch::Device device_of(const TrainConfig& config, const distributed::Environment* rank) {
  const torch::Device device = rank != nullptr ? distributed::rank_device(config.device, *rank)
                                               : torch::Device(config.device);
  TORCH_CHECK(!device.is_cuda() || torch::cuda::is_available(), "device ", config.device,
              ": no CUDA device is available to this LibTorch; use device cpu",
              config.amp == "fp16" && !train::autocast_supported(c10::DeviceType::CPU, torch::kHalf)
                  ? " (with amp bf16: this LibTorch's CPU autocast has no fp16)"
                  : "");
  return device;
}

int apply_threads(const TrainConfig& config, int64_t local_world_size) {
  const int threads = config.threads > 0
                          ? static_cast<int>(config.threads)
                          : std::max(1, usable_cpus() / static_cast<int>(local_world_size));
  set_num_threads(threads);
  return threads;
}

RunData open_data(const TrainConfig& config, bool need_train,
                  const std::vector<std::string>& classes, const std::string& classes_source) {
  RunData setup;
  data::DatasetOptions options;
  options.name = config.dataset;
  options.root = config.data;
  options.classes = classes;
  options.classes_source = classes_source;
  if (config.dataset == "synthetic" && config.input_size > 0) {
    options.synthetic_image_size = config.input_size;
  }
  if (config.valid_size > 0) {
    std::shared_ptr<data::Dataset> train = data::open_dataset(options, data::Split::Train);
    TORCH_CHECK(config.valid_size < train->size(), "valid-size ", config.valid_size,
                " leaves no training images: the training set has ", train->size());
    auto parts =
        data::split_validation(train, config.valid_size, static_cast<uint64_t>(config.seed));
    setup.train_set = parts.first;
    setup.eval_set = parts.second;
    setup.eval_name = "validation";
  } else {
    if (need_train) {
      setup.train_set = data::open_dataset(options, data::Split::Train);
      // Test labels are the training classes' indices, by name, whichever classes it has.
      options.classes = setup.train_set->classes();
      options.classes_source = "the training split";
    }
    setup.eval_set = data::open_dataset(options, data::Split::Test);
    setup.eval_name = "test";
  }
  const bool by_class = config.dataset == "imagefolder";
  if (setup.train_set) setup.train_set = some(setup.train_set, config.max_train_samples, by_class);
  setup.eval_set = some(setup.eval_set, config.max_eval_samples, by_class);
  TORCH_CHECK(setup.eval_set->size() > 0, "the ", setup.eval_name, " set is empty");
  setup.input_size = config.input_size;
  if (setup.input_size == 0) {
    // Folders of photos are cropped to ImageNet's 224; MNIST and CIFAR keep their size.
    setup.input_size = config.dataset == "imagefolder" ? 224 : setup.eval_set->get(0).image.size(0);
  }
  const data::Normalization normalization = data::default_normalization(config.dataset);
  setup.eval_transform = data::make_eval_transform(config.dataset, setup.input_size, normalization);
  setup.train_transform = config.augment
                              ? data::make_train_transform(config.dataset, setup.input_size,
                                                           normalization, augment_options(config))
                              : setup.eval_transform;
  return setup;
}

std::unique_ptr<data::DataLoader> make_train_loader(const TrainConfig& config, const RunData& data,
                                                    const torch::Device& device, int64_t rank,
                                                    int64_t world_size) {
  TORCH_CHECK(data.train_set->size() >= config.batch_size, "batch-size ", config.batch_size,
              " is larger than the training set (", data.train_set->size(),
              data.train_set->size() == 1 ? " image)" : " images)");
  data::LoaderOptions options = loader_options(config, device, true);
  // The global batch b is perm[b * B, (b + 1) * B); rank r takes its r-th part of B / W.
  options.batch_size = config.batch_size / world_size;
  options.rank = rank;
  options.world_size = world_size;
  options.keep_empty_batches = world_size > 1;  // the ranks decide together (see the trainer)
  return std::make_unique<data::DataLoader>(data.train_set, data.train_transform, options);
}

std::unique_ptr<data::DataLoader> make_eval_loader(const TrainConfig& config, const RunData& data,
                                                   const torch::Device& device, int64_t rank,
                                                   int64_t world_size) {
  return std::make_unique<data::DataLoader>(eval_shard(data.eval_set, rank, world_size),
                                            data.eval_transform,
                                            loader_options(config, device, false));
}

ModelSetup build_model(const TrainConfig& config, const RunData& data, const torch::Device& device,
                       int64_t local_batch) {
  ModelSetup setup;
  const auto classes = static_cast<int64_t>(data.train_set->classes().size());
  setup.options = model_options(config, data.train_set->channels(), classes, data.input_size);
  setup.num_batch_splits = config.num_batch_splits;
  // Copies of the weights beside them and their gradients: the optimiser's state, the EMA.
  const int64_t optimizer_copies =
      (config.optimizer == "adamw" ? 2 : 1) + (config.model_ema ? 1 : 0);
  setup.memory_line = choose_memory_mode(config, device, local_batch, optimizer_copies, setup);
  setup.plan = plan_architecture(setup.options);
  check_batch_norm_values(setup.plan, smallest_piece(config, local_batch, setup.num_batch_splits));
  setup.stem_line = describe_stem(config, setup.options);
  if (!device.is_cuda()) {
    const int64_t need = predicted_step_bytes(setup.plan, setup.options.memory(), local_batch,
                                              setup.num_batch_splits, optimizer_copies,
                                              device.type(), parse_amp(config.amp));
    const AvailableMemory available = available_memory();
    TORCH_CHECK(available.bytes == 0 || need <= available.bytes, "this run needs about ",
                format_bytes(need), " for a training step (memory ",
                memory_mode_name(setup.options.memory()), ", batch ", config.batch_size, ", ",
                data.input_size, "x", data.input_size, " images) but ",
                format_bytes(available.bytes),
                " is available: use a smaller batch-size or input-size, memory efficient or "
                "minimal, or memory auto (which adds batch splits); the available memory is "
                "that of ",
                available.source);
  }
  setup.model = DenseNet(setup.options);
  if (!config.pretrained.empty() && config.resume.empty()) {
    setup.pretrained_line =
        load_pretrained(setup.model, config.pretrained, config.arch, config.dataset).summary();
  }
  setup.model->to(device);
  if (config.channels_last) setup.model->set_memory_format(at::MemoryFormat::ChannelsLast);
  return setup;
}

Optimization build_optimization(const TrainConfig& config, DenseNet& model,
                                const torch::Device& device, int64_t steps_per_epoch) {
  Optimization result;
  OptimizerOptions optimizer;
  optimizer.name = config.optimizer;
  optimizer.lr = config.lr;
  optimizer.momentum = config.momentum;
  optimizer.nesterov = config.nesterov;
  optimizer.weight_decay = config.weight_decay;
  optimizer.no_weight_decay_on_norm = config.no_weight_decay_on_norm;
  result.optimizer = std::make_unique<Optimizer>(*model, optimizer);
  result.autocast = parse_amp(config.amp);
  if (uses_loss_scaler(config)) {
    LossScalerOptions scaler;
    scaler.init_scale = config.loss_scale_init;
    scaler.growth_interval = config.loss_scale_growth_interval;
    result.scaler = std::make_unique<LossScaler>(scaler, device);
  }
  ScheduleOptions schedule;
  schedule.type = parse_lr_type(config.lr_type);
  schedule.lr = config.lr;
  schedule.epochs = config.epochs;
  schedule.steps_per_epoch = steps_per_epoch;
  schedule.milestones = effective_milestones(config);
  schedule.warmup_epochs = config.warmup_epochs;
  result.schedule = std::make_unique<Schedule>(schedule);
  return result;
}

}  // namespace densenet::train::detail
