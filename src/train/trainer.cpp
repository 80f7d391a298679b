#include "densenet/train/trainer.h"

#include "densenet/data/dataset.h"
#include "densenet/data/loader.h"
#include "densenet/data/transforms.h"
#include "densenet/distributed/gradient_buckets.h"
#include "densenet/distributed/process_group.h"
#include "densenet/distributed/replicas.h"
#include "densenet/io/atomic_file.h"
#include "densenet/io/pretrained.h"
#include "densenet/io/pth_file.h"
#include "densenet/io/state_dict.h"
#include "densenet/io/weights.h"
#include "densenet/model/architecture.h"
#include "densenet/model/memory_plan.h"
#include "densenet/model/presets.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/amp.h"
#include "densenet/train/checkpointer.h"
#include "densenet/train/loss_scaler.h"
#include "densenet/train/memory_choice.h"
#include "densenet/train/metrics.h"
#include "densenet/train/model_ema.h"
#include "densenet/train/optimizer.h"
#include "densenet/train/progress.h"
#include "densenet/train/schedule.h"
#include "densenet/util/threads.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/utils.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <ctime>
#include <filesystem>
#include <limits>
#include <mutex>
#include <ostream>
#include <regex>
#include <sstream>
#include <thread>

namespace densenet::train {
namespace fs = std::filesystem;
namespace {

std::atomic<bool> stop_requested{false};

// printf-style formatting onto a stream: the lines below are tables of numbers whose widths
// and precisions read best as format strings.
__attribute__((format(printf, 2, 3))) void print(std::ostream& out, const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  const int length = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(static_cast<size_t>(std::max(length, 0)) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  va_end(args);
  text.resize(static_cast<size_t>(std::max(length, 0)));
  out << text;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The first `count` samples of a dataset (max-train-samples, max-eval-samples).
std::shared_ptr<data::Dataset> first(std::shared_ptr<data::Dataset> dataset, int64_t count) {
  if (count <= 0 || count >= dataset->size()) return dataset;
  std::vector<int64_t> indices(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) indices[static_cast<size_t>(i)] = i;
  const std::string description = dataset->describe() + ", first " + std::to_string(count);
  return data::subset(std::move(dataset), std::move(indices), description);
}

torch::Tensor cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

pth::Value text(const std::string& value) {
  return pth::Value::string(value);
}
pth::Value number(double value) {
  return float_value(value);
}
pth::Value integer(int64_t value) {
  return pth::Value::integer(value);
}

const pth::Value& field(const pth::Value& dict, const std::string& name,
                        const std::string& source) {
  const pth::Value* value = dict.find(name);
  TORCH_CHECK(value != nullptr, "'", source, "' is not a densenet training checkpoint: no '", name,
              "' (train from scratch, or load plain weights with 'densenet eval')");
  return *value;
}

pth::Value record_value(const EpochRecord& r) {
  pth::Value dict = pth::Value::dict();
  const auto put = [&](const char* name, double value) {
    dict.set_item(text(name), number(value));
  };
  dict.set_item(text("epoch"), integer(r.epoch));
  put("lr", r.lr);
  put("train_loss", r.train_loss);
  put("train_top1", r.train_top1);
  put("eval_loss", r.eval_loss);
  put("eval_top1", r.eval_top1);
  put("eval_top5", r.eval_top5);
  put("epoch_seconds", r.epoch_seconds);
  put("eval_seconds", r.eval_seconds);
  put("images_per_second", r.images_per_second);
  put("data_wait_share", r.data_wait_share);
  put("elapsed_seconds", r.elapsed_seconds);
  put("comm_wait_share", r.comm_wait_share);
  dict.set_item(text("skipped_steps"), integer(r.skipped_steps));
  put("loss_scale", r.loss_scale);
  put("ema_eval_loss", r.ema_eval_loss);
  put("ema_eval_top1", r.ema_eval_top1);
  put("ema_eval_top5", r.ema_eval_top5);
  return dict;
}

EpochRecord record_from(const pth::Value& dict) {
  EpochRecord r;
  const auto get = [&](const char* name) {
    const pth::Value* value = dict.find(name);
    return value == nullptr ? std::nan("") : float_of(*value);
  };
  r.epoch = dict.find("epoch") == nullptr ? 0 : dict.find("epoch")->as_int();
  r.lr = get("lr");
  r.train_loss = get("train_loss");
  r.train_top1 = get("train_top1");
  r.eval_loss = get("eval_loss");
  r.eval_top1 = get("eval_top1");
  r.eval_top5 = get("eval_top5");
  r.epoch_seconds = get("epoch_seconds");
  r.eval_seconds = get("eval_seconds");
  r.images_per_second = get("images_per_second");
  r.data_wait_share = get("data_wait_share");
  r.elapsed_seconds = get("elapsed_seconds");
  // Checkpoints from before data-parallel training have no comm_wait_share, from before amp no
  // skipped_steps or loss_scale.
  r.comm_wait_share =
      dict.find("comm_wait_share") == nullptr ? 0 : float_of(*dict.find("comm_wait_share"));
  r.skipped_steps =
      dict.find("skipped_steps") == nullptr ? 0 : dict.find("skipped_steps")->as_int();
  r.loss_scale = get("loss_scale");
  r.ema_eval_loss = get("ema_eval_loss");  // NaN in checkpoints from before model-ema
  r.ema_eval_top1 = get("ema_eval_top1");
  r.ema_eval_top5 = get("ema_eval_top5");
  return r;
}

std::string default_run_dir(const TrainConfig& config) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  return "runs/" + config.dataset + "-" + config.arch + "-" + stamp;
}

// A run directory worth protecting: one with a checkpoint. Metrics without one (a run that
// failed before its first checkpoint) are replaced by the next run there, as with --force.
bool holds_run(const std::string& dir) {
  std::error_code error;
  return fs::exists(fs::path(dir) / "last.pth", error);
}

bool is_resumed_run(const std::string& dir, const std::string& resume_path) {
  std::error_code error;
  return !resume_path.empty() && fs::equivalent(fs::path(resume_path).parent_path().empty()
                                                    ? fs::path(".")
                                                    : fs::path(resume_path).parent_path(),
                                                dir, error);
}

// check_run_dir, then --force's removal of the previous run's outputs, then the directory.
void prepare_run_dir(const std::string& dir, const TrainConfig& config,
                     const std::string& resume_path) {
  check_run_dir(dir, config, resume_path);
  std::error_code error;
  if (fs::exists(dir, error)) {
    if (!is_resumed_run(dir, resume_path)) {
      // --force: the previous run's outputs go, so that none of them (a numbered checkpoint,
      // a best.pth, or a last.pth that --resume would pick up if the new run stopped before
      // its first checkpoint) passes for the new run's. Other files stay.
      static const std::regex run_file(
          R"(last\.pth|best\.pth|best_ema\.pth|checkpoint-\d+\.pth|metrics\.csv|metrics\.jsonl|curves\.png)");
      std::vector<fs::path> previous;
      for (const auto& entry : fs::directory_iterator(dir, error)) {
        if (std::regex_match(entry.path().filename().string(), run_file)) {
          previous.push_back(entry.path());
        }
      }
      for (const fs::path& path : previous) {
        fs::remove(path, error);
        TORCH_CHECK(!error, "--force: cannot remove '", path.string(),
                    "' of the previous run: ", error.message());
      }
    }
  }
  fs::create_directories(dir, error);
  TORCH_CHECK(!error, "cannot create output-dir '", dir, "': ", error.message());
}

// The datasets of a run and their transforms.
struct DataSetup {
  std::shared_ptr<data::Dataset> train_set, eval_set;
  std::string eval_name;  // "test" or "validation"
  int64_t input_size = 0;
  std::shared_ptr<data::Transform> train_transform, eval_transform;
};

data::AugmentOptions augment_options(const TrainConfig& config) {
  data::AugmentOptions options;
  options.brightness = options.contrast = options.saturation = config.color_jitter;
  options.lighting = config.lighting;
  options.crop_padding = config.crop_padding;
  options.hflip = config.hflip;
  return options;
}

DataSetup open_data(const TrainConfig& config, bool need_train) {
  DataSetup setup;
  data::DatasetOptions options;
  options.name = config.dataset;
  options.root = config.data;
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
    if (need_train) setup.train_set = data::open_dataset(options, data::Split::Train);
    setup.eval_set = data::open_dataset(options, data::Split::Test);
    setup.eval_name = "test";
  }
  if (setup.train_set) setup.train_set = first(setup.train_set, config.max_train_samples);
  setup.eval_set = first(setup.eval_set, config.max_eval_samples);
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

// Training batches are shuffled and, as timm does, the short last batch is dropped (its batch
// statistics would be noisy, or missing for one image); evaluation sees every image in order.
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
// covering the set, so that the all-reduced sums count every image exactly once (torch's
// DistributedSampler would pad the set with duplicates).
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

std::unique_ptr<data::DataLoader> make_eval_loader(const TrainConfig& config,
                                                   const DataSetup& setup,
                                                   const torch::Device& device, int64_t rank = 0,
                                                   int64_t world_size = 1) {
  return std::make_unique<data::DataLoader>(eval_shard(setup.eval_set, rank, world_size),
                                            setup.eval_transform,
                                            loader_options(config, device, false));
}

torch::Device device_of(const TrainConfig& config) {
  torch::Device device(config.device);
  TORCH_CHECK(!device.is_cuda() || torch::cuda::is_available(), "device ", config.device,
              ": no CUDA device is available to this LibTorch; use device cpu");
  return device;
}

// The cores are shared by the ranks of this machine (local world size) unless threads is given.
int apply_threads(const TrainConfig& config, int64_t local_world_size = 1) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = config.threads > 0 ? static_cast<int>(config.threads)
                                         : std::max(1, cores / static_cast<int>(local_world_size));
  set_num_threads(threads);
  return threads;
}

}  // namespace

void request_stop() {
  stop_requested.store(true);
}
void clear_stop_request() {
  stop_requested.store(false);
}

BatchResult accumulate_gradients(DenseNet& model, const torch::Tensor& images,
                                 const torch::Tensor& labels, int64_t splits,
                                 double label_smoothing, distributed::GradientBuckets* buckets,
                                 std::optional<c10::ScalarType> autocast,
                                 const LossScaler* scaler) {
  namespace F = torch::nn::functional;
  const auto options =
      F::CrossEntropyFuncOptions().reduction(torch::kSum).label_smoothing(label_smoothing);
  const double n = static_cast<double>(labels.size(0));
  BatchResult result;
  const auto image_pieces = images.chunk(splits);
  const auto label_pieces = labels.chunk(splits);
  for (size_t p = 0; p < image_pieces.size(); ++p) {
    torch::Tensor logits, loss;  // (n_p, classes) in the autocast dtype under amp; () float32
    {
      const AutocastGuard autocast_scope(image_pieces[p].device().type(), autocast);
      logits = model->forward(image_pieces[p]);
      loss = F::cross_entropy(logits, label_pieces[p], options);
    }
    const double value = loss.item<double>();
    result.loss_sum += value;
    if (!std::isfinite(value)) {
      result.finite = false;
      if (buckets == nullptr) return result;
    }
    if (buckets != nullptr && p + 1 == image_pieces.size()) buckets->arm();
    const torch::Tensor mean_part = loss / n;
    (scaler != nullptr ? scaler->scale(mean_part) : mean_part).backward();
    torch::NoGradGuard no_grad;
    result.correct += count_topk_correct(logits.detach(), label_pieces[p], {1})[0];
  }
  return result;
}

bool step_optimizer(Optimizer& optimizer, double clip, LossScaler* scaler) {
  const auto& parameters = optimizer.parameters();
  // Unscaled before clipping, so that `clip` bounds the true gradient norm.
  const bool found_inf = scaler != nullptr && scaler->unscale(parameters);
  if (!found_inf) {
    if (clip > 0) torch::nn::utils::clip_grad_norm_(parameters, clip);
    optimizer.step();
  }
  if (scaler != nullptr) scaler->update(found_inf);
  return !found_inf;
}

EvalResult evaluate(DenseNet& model, data::DataLoader& loader, const torch::Device& device,
                    int64_t epoch, distributed::ProcessGroup* group) {
  const auto start = Clock::now();
  model->eval();
  torch::NoGradGuard no_grad;
  EvalResult result;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  loader.start_epoch(epoch);
  while (auto batch = loader.next()) {
    const torch::Tensor images = batch->images.to(device, /*non_blocking=*/true);
    const torch::Tensor labels = batch->labels.to(device, /*non_blocking=*/true);
    const torch::Tensor logits = model->forward(images);
    loss_sum +=
        torch::nn::functional::cross_entropy(
            logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
            .item<double>();
    const std::vector<int64_t> correct = count_topk_correct(logits, labels, {1, 5});
    top1 += correct[0];
    top5 += correct[1];
    result.images += labels.size(0);
  }
  if (group != nullptr) {
    // Sums in float64: counts stay exact far beyond any evaluation set.
    const torch::Tensor sums =
        torch::tensor({loss_sum, static_cast<double>(top1), static_cast<double>(top5),
                       static_cast<double>(result.images)},
                      torch::kFloat64);
    group->allreduce(sums, distributed::Reduction::sum, "the all-reduce of the evaluation sums");
    loss_sum = sums[0].item<double>();
    top1 = static_cast<int64_t>(sums[1].item<double>());
    top5 = static_cast<int64_t>(sums[2].item<double>());
    result.images = static_cast<int64_t>(sums[3].item<double>());
  }
  TORCH_CHECK(result.images > 0, "the evaluation set is empty");
  const double n = static_cast<double>(result.images);
  result.loss = loss_sum / n;
  result.top1 = 100.0 * static_cast<double>(top1) / n;
  result.top5 = 100.0 * static_cast<double>(top5) / n;
  result.seconds = seconds_since(start);
  return result;
}

// Everything a run holds. Members are listed in the order they are built.
struct Trainer::State {
  TrainConfig config;
  std::ostream* out;
  std::ostream no_output{nullptr};  // ranks other than 0 print nothing
  bool terminal;
  // Data-parallel runs: the process group (null for one process) and the gradient buckets.
  std::shared_ptr<distributed::ProcessGroup> group;
  std::unique_ptr<distributed::GradientBuckets> buckets;
  int64_t rank = 0, world_size = 1;
  bool stop_agreed = false;     // every rank saw a stop request at the last step's all-reduce
  int64_t replica_checks = 0;   // checkpoints at which the replicas were compared (all equal)
  int64_t replica_tensors = 0;  // tensors compared at each
  torch::Device device{torch::kCPU};
  std::string run_dir;
  std::string resume_path;
  pth::Checkpoint resumed;  // the checkpoint being continued (root None otherwise)

  std::shared_ptr<data::Dataset> train_set, eval_set;
  std::string eval_name;  // "test" or "validation"
  std::unique_ptr<data::DataLoader> train_loader, eval_loader;

  DenseNet model{nullptr};
  ArchitecturePlan plan;
  std::unique_ptr<Optimizer> optimizer;
  std::optional<c10::ScalarType> autocast;  // amp: the autocast dtype; nullopt for float32
  std::unique_ptr<LossScaler> scaler;       // loss-scale dynamic (null without)
  std::unique_ptr<Schedule> schedule;
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<MetricLogger> metrics;
  std::unique_ptr<ModelEma> ema;  // model-ema (null without)
  std::string pretrained_line;    // what pretrained loaded, for the start-up summary

  // Position: epochs completed, the next batch of the current epoch, optimiser steps taken.
  int64_t epoch = 0;
  int64_t next_batch = 0;
  int64_t global_step = 0;
  double best_top1 = -1;
  int64_t best_epoch = 0;
  double best_ema_top1 = -1;  // the model EMA's best evaluation top-1 (best_ema.pth)
  int64_t best_ema_epoch = 0;
  double elapsed_before = 0;  // seconds trained before this process (resumed runs)

  // The current epoch's sums so far (kept in the checkpoint so that a mid-epoch resume reports
  // the same epoch means).
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t images = 0;
  double epoch_seconds = 0;
  double wait_seconds = 0;
  double comm_seconds = 0;    // waiting for collectives after backward (data-parallel)
  int64_t skipped_steps = 0;  // steps skipped by the loss scaler (inf/NaN gradients)

  // The current epoch starts at its first batch with empty sums: after an epoch ends, and when a
  // resume on another world size restarts the interrupted epoch.
  void restart_epoch_sums() {
    next_batch = 0;
    loss_sum = 0;
    correct = 0;
    images = 0;
    epoch_seconds = 0;
    wait_seconds = 0;
    comm_seconds = 0;
    skipped_steps = 0;
  }

  bool writes() const { return rank == 0; }  // rank 0 alone prints and owns the run directory
};

Trainer::Trainer(TrainConfig config, std::ostream& out, bool terminal,
                 std::shared_ptr<distributed::ProcessGroup> group)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.group = std::move(group);
  if (s.group) {
    s.rank = s.group->rank();
    s.world_size = s.group->world_size();
  }
  s.out = s.writes() ? &out : &s.no_output;
  s.terminal = terminal && s.writes();
  validate(config);
  TORCH_CHECK(config.batch_size % s.world_size == 0, "batch-size ", config.batch_size,
              " is not divisible by the world size ", s.world_size,
              ": batch-size is the global batch, split evenly over the ranks");
  TORCH_CHECK(config.batch_size / s.world_size >= config.num_batch_splits, "num-batch-splits ",
              config.num_batch_splits, " is more than each rank's ",
              config.batch_size / s.world_size, " images of a batch (batch-size ",
              config.batch_size, " over ", s.world_size, " ranks)");

  // A resumed run continues under the checkpoint's configuration; only keys that do not change
  // what is computed may differ (resume_config in the CLI merges them; checked again here).
  if (!config.resume.empty()) {
    s.resume_path = Checkpointer::resolve(config.resume);
    s.resumed = pth::read_checkpoint(s.resume_path);
    TrainConfig saved;
    load_config_text(saved, field(s.resumed.root, "config", s.resume_path).as_string(),
                     s.resume_path + " (its config)");
    // The run as it continues with the keys that may change (epochs moves default milestones).
    TrainConfig base = saved;
    for (const ConfigKey& key : config_keys()) {
      if (may_change_on_resume(key.name)) copy_config_value(base, config, key.name);
    }
    for (const ConfigKey& key : config_keys()) {
      if (may_change_on_resume(key.name)) continue;
      // A key not given differs, if at all, only through one that was (growth-rate moves a BC
      // stem), which is named instead.
      check_unchanged_on_resume(base, config, key.name);
    }
    if (config.output_dir.empty()) {
      config.output_dir = fs::path(s.resume_path).parent_path().string();
      if (config.output_dir.empty()) config.output_dir = ".";
    }
  }
  s.config = config;

  TORCH_CHECK(!config.test_only || !config.resume.empty(),
              "test-only evaluates a resumed run: give --resume DIR (or use 'densenet eval "
              "--weights FILE' for any weights)");
  s.device = device_of(config);
  if (s.group) distributed::choose_backend(config.dist_backend, s.device);
  const int threads = apply_threads(config, s.group ? s.group->environment().local_world_size : 1);
  const int64_t local_batch = config.batch_size / s.world_size;  // this rank's images per step
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  // Data.
  DataSetup data = open_data(config, /*need_train=*/true);
  s.train_set = data.train_set;
  s.eval_set = data.eval_set;
  s.eval_name = data.eval_name;
  const int64_t input_size = data.input_size;
  TORCH_CHECK(s.train_set->size() >= config.batch_size, "batch-size ", config.batch_size,
              " is larger than the training set (", s.train_set->size(),
              s.train_set->size() == 1 ? " image)" : " images)");
  data::LoaderOptions train_options = loader_options(config, s.device, true);
  // The global batch b is perm[b * B, (b + 1) * B); rank r takes its r-th part of B / W.
  train_options.batch_size = local_batch;
  train_options.rank = s.rank;
  train_options.world_size = s.world_size;
  train_options.keep_empty_batches = s.world_size > 1;  // see the training loop
  s.train_loader =
      std::make_unique<data::DataLoader>(s.train_set, data.train_transform, train_options);
  s.eval_loader = make_eval_loader(config, data, s.device, s.rank, s.world_size);

  // Model and memory.
  const int64_t classes = static_cast<int64_t>(s.train_set->classes().size());
  DenseNetOptions options = model_options(config, s.train_set->channels(), classes, input_size);
  s.plan = plan_architecture(options);
  std::string memory_line;
  // Copies of the weights beside them and their gradients: the optimiser's state, the EMA.
  const int64_t optimizer_copies =
      (config.optimizer == "adamw" ? 2 : 1) + (config.model_ema ? 1 : 0);
  if (config.memory == "auto") {
    const int64_t budget =
        config.memory_budget > 0 ? config.memory_budget : default_memory_budget();
    const MemoryChoice choice =
        choose_memory(s.plan, local_batch, budget, s.device.type(), optimizer_copies);
    options.memory(choice.mode);
    s.config.num_batch_splits = std::max(config.num_batch_splits, choice.num_batch_splits);
    memory_line = "memory: auto -> " + choice.reason;
  } else {
    options.memory(parse_memory_mode(config.memory));
    memory_line = "memory: " + config.memory + ", predicted step peak " +
                  format_bytes(predicted_step_bytes(s.plan, options.memory(), local_batch,
                                                    s.config.num_batch_splits, optimizer_copies));
  }
  s.plan = plan_architecture(options);
  if (!s.device.is_cuda()) {
    // Refuse before allocating what the memory plan says cannot fit: the kernel's OOM killer
    // would end the run without a word.
    const int64_t need = predicted_step_bytes(s.plan, options.memory(), local_batch,
                                              s.config.num_batch_splits, optimizer_copies);
    const int64_t available = default_memory_budget() / 8 * 10;  // MemAvailable
    TORCH_CHECK(need <= available, "this run needs about ", format_bytes(need),
                " for a training step (memory ", memory_mode_name(options.memory()), ", batch ",
                config.batch_size, ", ", input_size, "x", input_size, " images) but ",
                format_bytes(available),
                " is available: use a smaller batch-size or input-size, memory efficient or "
                "minimal, or memory auto (which adds batch splits)");
  }
  s.model = DenseNet(options);
  // Fine-tuning starts from the file's weights; a resumed run has its own in the checkpoint.
  if (!config.pretrained.empty() && config.resume.empty()) {
    s.pretrained_line = load_pretrained(s.model, config.pretrained, config.arch).summary();
  }
  s.model->to(s.device);
  if (config.channels_last) s.model->set_memory_format(at::MemoryFormat::ChannelsLast);
  if (config.model_ema) {
    ModelEmaOptions ema_options;
    ema_options.decay = config.model_ema_decay;
    ema_options.use_warmup = config.model_ema_warmup;
    s.ema = std::make_unique<ModelEma>(s.model, ema_options);
  }

  OptimizerOptions optimizer_options;
  optimizer_options.name = config.optimizer;
  optimizer_options.lr = config.lr;
  optimizer_options.momentum = config.momentum;
  optimizer_options.nesterov = config.nesterov;
  optimizer_options.weight_decay = config.weight_decay;
  optimizer_options.no_weight_decay_on_norm = config.no_weight_decay_on_norm;
  s.optimizer = std::make_unique<Optimizer>(*s.model, optimizer_options);
  s.autocast = parse_amp(config.amp);
  if (uses_loss_scaler(config)) {
    LossScalerOptions scaler_options;
    scaler_options.init_scale = config.loss_scale_init;
    scaler_options.growth_interval = config.loss_scale_growth_interval;
    s.scaler = std::make_unique<LossScaler>(scaler_options, s.device);
  }

  ScheduleOptions schedule_options;
  schedule_options.type = parse_lr_type(config.lr_type);
  schedule_options.lr = config.lr;
  schedule_options.epochs = config.epochs;
  schedule_options.steps_per_epoch = s.train_loader->batches_per_epoch();
  schedule_options.milestones = effective_milestones(config);
  schedule_options.warmup_epochs = config.warmup_epochs;
  s.schedule = std::make_unique<Schedule>(schedule_options);

  // The run directory. A resumed run with no epoch left to train writes nothing, not even into
  // a new output-dir (which would then hold a run without a checkpoint).
  const bool nothing_to_do =
      !s.resume_path.empty() &&
      field(s.resumed.root, "epoch", s.resume_path).as_int() >= config.epochs;
  const bool writes_run_dir = !config.test_only && s.writes() && !nothing_to_do;
  s.run_dir = config.output_dir.empty() ? default_run_dir(config) : config.output_dir;
  if (writes_run_dir) {
    prepare_run_dir(s.run_dir, config, s.resume_path);
    // Continued in another directory: the best epoch so far may be behind, and best.pth is
    // written only when an epoch beats it; so it comes along.
    for (const char* best : {"best.pth", "best_ema.pth"}) {
      const fs::path best_before = fs::path(s.resume_path).parent_path() / best;
      const fs::path best_here = fs::path(s.run_dir) / best;
      std::error_code error;
      if (!s.resume_path.empty() && !is_resumed_run(s.run_dir, s.resume_path) &&
          fs::exists(best_before, error) && !fs::exists(best_here, error)) {
        write_file_atomically(best_here.string(), read_file(best_before.string()));
      }
    }
  }
  s.checkpointer =
      std::make_unique<Checkpointer>(s.run_dir, config.save_interval, config.keep_checkpoints);
  s.metrics = std::make_unique<MetricLogger>(s.run_dir);

  if (!s.resume_path.empty()) {
    const pth::Value& root = s.resumed.root;
    const std::string& source = s.resume_path;
    try {
      load_state_dict(*s.model, tensors_of(field(root, "model", source), source), true);
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, "'", source,
                  "' does not fit this model: ", error.what_without_backtrace());
    }
    s.optimizer->load_state_dict(field(root, "optimizer", source));
    if (s.scaler) s.scaler->load_state_dict(field(root, "scaler", source));
    s.epoch = field(root, "epoch", source).as_int();
    s.next_batch = field(root, "next_batch", source).as_int();
    s.global_step = field(root, "global_step", source).as_int();
    s.best_top1 = float_of(field(root, "best_top1", source));
    s.best_epoch = field(root, "best_epoch", source).as_int();
    if (s.ema) {  // timm's key; the config says the run keeps one, so the checkpoint has it
      s.ema->load_state_dict(tensors_of(field(root, "state_dict_ema", source), source), source);
      s.best_ema_top1 = float_of(field(root, "best_ema_top1", source));
      s.best_ema_epoch = field(root, "best_ema_epoch", source).as_int();
    }
    s.elapsed_before = float_of(field(root, "elapsed_seconds", source));
    const pth::Value& partial = field(root, "partial_epoch", source);
    s.loss_sum = float_of(field(partial, "loss_sum", source));
    s.correct = field(partial, "correct", source).as_int();
    s.images = field(partial, "images", source).as_int();
    s.epoch_seconds = float_of(field(partial, "seconds", source));
    s.wait_seconds = float_of(field(partial, "wait_seconds", source));
    const pth::Value* skipped = partial.find("skipped_steps");
    s.skipped_steps = skipped == nullptr ? 0 : skipped->as_int();
    set_cpu_rng_state(field(field(root, "rng", source), "torch_cpu", source).as_tensor());
    std::vector<EpochRecord> history;
    for (const auto& record : field(root, "history", source).elements()) {
      history.push_back(record_from(record));
    }
    if (writes_run_dir) s.metrics->restore(history);
    const pth::Value* saved_world = root.find("world_size");
    const int64_t saved_world_size = saved_world == nullptr ? 1 : saved_world->as_int();
    if (saved_world_size != s.world_size && s.next_batch > 0) {
      // A mid-epoch position is exact only on the same world size (the padding of the shards,
      // the per-rank batch statistics differ): the epoch starts again from its first batch.
      print(*s.out,
            "the checkpoint was written by %lld rank%s, this run has %lld: epoch %lld restarts "
            "at its first step (its %lld step%s done %s trained again; exact resumption needs "
            "the same world size)\n",
            static_cast<long long>(saved_world_size), saved_world_size == 1 ? "" : "s",
            static_cast<long long>(s.world_size), static_cast<long long>(s.epoch + 1),
            static_cast<long long>(s.next_batch), s.next_batch == 1 ? "" : "s",
            s.next_batch == 1 ? "is" : "are");
      s.global_step -= s.next_batch;
      s.restart_epoch_sums();
    } else if (saved_world_size != s.world_size) {
      print(*s.out, "the checkpoint was written by %lld rank%s, this run continues on %lld\n",
            static_cast<long long>(saved_world_size), saved_world_size == 1 ? "" : "s",
            static_cast<long long>(s.world_size));
    }
    TORCH_CHECK(s.next_batch <= s.train_loader->batches_per_epoch(), "'", source,
                "' stopped at batch ", s.next_batch, " of an epoch that now has ",
                s.train_loader->batches_per_epoch(), " (was the dataset changed?)");
  }

  if (s.group) {
    // Every rank starts from rank 0's weights and buffers (a fresh run's are equal already, by
    // the seed; this makes it so whatever happened, as DDP's constructor does).
    distributed::broadcast_from_rank0(*s.model, *s.group);
    s.buckets = std::make_unique<distributed::GradientBuckets>(s.model->parameters(), s.group,
                                                               config.dist_bucket_size);
    if (config.sync_bn) {
      s.model->sync_batch_norm([group = s.group, &comm = s.comm_seconds](torch::Tensor& sums) {
        const auto start = Clock::now();
        group->allreduce(sums, distributed::Reduction::sum, "the sync-bn statistics");
        comm += seconds_since(start);
      });
    }
  }

  // The run records its effective configuration and classes; a resumed run rewrites them, as
  // keys such as epochs may have changed and the directory may have moved.
  if (writes_run_dir) {
    // Without `force` or `resume`: `--config run/config.yaml` starts a new run from this one's
    // settings and must not overwrite this run, or continue it, unless asked to again.
    TrainConfig recorded = s.config;
    recorded.force = false;
    recorded.resume.clear();
    write_file_atomically((fs::path(s.run_dir) / "config.yaml").string(), config_to_yaml(recorded));
    std::string classes_text;
    for (const auto& name : s.train_set->classes()) classes_text += name + "\n";
    // predict --labels reads this file: one class name per line, index = label.
    write_file_atomically((fs::path(s.run_dir) / "classes.txt").string(), classes_text);
  }

  print(*s.out, "densenet train: %s\n",
        s.resume_path.empty() ? ("run directory " + s.run_dir).c_str()
                              : ("resuming " + s.resume_path).c_str());
  print(*s.out, "data: %s\n      %s: %s\n", s.train_set->describe().c_str(), s.eval_name.c_str(),
        s.eval_set->describe().c_str());
  print(*s.out,
        "model: %s, %lld block%s %s, growth rate %lld, input %lldx%lldx%lld, %lld classes, "
        "%.3f M parameters, %.3f GMAC per image\n",
        config.arch.c_str(), static_cast<long long>(options.block_config().size()),
        options.block_config().size() == 1 ? "" : "s",
        format_int_list(options.block_config()).c_str(),
        static_cast<long long>(options.effective_growth_rate()),
        static_cast<long long>(options.in_channels()), static_cast<long long>(input_size),
        static_cast<long long>(input_size), static_cast<long long>(classes),
        s.plan.num_parameters() / 1e6, s.plan.forward_macs() / 1e9);
  if (!s.pretrained_line.empty()) print(*s.out, "%s\n", s.pretrained_line.c_str());
  print(*s.out, "%s\n", memory_line.c_str());
  print(*s.out,
        "training: %lld epoch%s x %lld steps, batch %lld (%lld split%s), %s lr %g %s, "
        "weight decay %g, %d thread%s on %s\n",
        static_cast<long long>(config.epochs), config.epochs == 1 ? "" : "s",
        static_cast<long long>(s.train_loader->batches_per_epoch()),
        static_cast<long long>(config.batch_size),
        static_cast<long long>(s.config.num_batch_splits),
        s.config.num_batch_splits == 1 ? "" : "s", config.optimizer.c_str(), config.lr,
        config.lr_type.c_str(), config.weight_decay, threads, threads == 1 ? "" : "s",
        s.device.str().c_str());
  if (s.ema) {
    print(*s.out,
          "model EMA: decay %g per step%s (timm ModelEmaV3), evaluated each epoch; best_ema.pth "
          "holds its best\n",
          config.model_ema_decay, config.model_ema_warmup ? " after a warm-up" : "");
  }
  if (s.autocast) {
    std::ostringstream scaling;
    if (s.scaler) {
      print(scaling,
            "dynamic loss scale from %g, x2 after %lld clean steps, x0.5 and the step "
            "skipped on inf/NaN gradients",
            config.loss_scale_init, static_cast<long long>(config.loss_scale_growth_interval));
    } else {
      scaling << "no loss scaling";
    }
    print(*s.out, "amp: %s autocast, float32 weights%s; %s\n", config.amp.c_str(),
          options.memory() == MemoryMode::kNaive
              ? ""
              : (" (the dense blocks of memory " + memory_mode_name(options.memory()) +
                 " compute in float32)")
                    .c_str(),
          scaling.str().c_str());
  }
  if (s.group) {
    print(*s.out,
          "data-parallel: %lld ranks (gloo), %lld images per rank per step, %lld gradient "
          "bucket%s of up to %s, dist-timeout %g s, %s\n",
          static_cast<long long>(s.world_size), static_cast<long long>(local_batch),
          static_cast<long long>(s.buckets->num_buckets()),
          s.buckets->num_buckets() == 1 ? "" : "s", format_bytes(config.dist_bucket_size).c_str(),
          config.dist_timeout,
          config.sync_bn ? "sync-bn (batch statistics of the global batch)"
                         : "batch statistics per rank (running statistics averaged)");
  } else if (config.sync_bn) {
    // Kept rather than refused: a config written for several ranks also runs on one.
    print(*s.out,
          "note: sync-bn has no effect in a single process: batch statistics are those of each "
          "batch%s\n",
          s.config.num_batch_splits > 1 ? " split, as without sync-bn" : "");
  }
  s.out->flush();
}

Trainer::~Trainer() = default;

const TrainConfig& Trainer::config() const {
  return state_->config;
}
const std::string& Trainer::run_dir() const {
  return state_->run_dir;
}
DenseNet& Trainer::model() {
  return state_->model;
}

namespace {

pth::Value make_checkpoint(const Trainer& trainer, const ArchitecturePlan& plan,
                           const Optimizer& optimizer, int64_t epoch, int64_t next_batch,
                           int64_t global_step, double best_top1, int64_t best_epoch,
                           double elapsed, double loss_sum, int64_t correct, int64_t images,
                           double epoch_seconds, double wait_seconds, int64_t world_size,
                           const std::vector<EpochRecord>& history,
                           const std::vector<std::string>& classes, const std::string& lr_type,
                           const LossScaler* scaler, int64_t skipped_steps) {
  pth::Value root = pth::Value::dict();
  const auto put = [&](const char* name, pth::Value value) { root.set_item(text(name), value); };
  // The model under torchvision's names, so torchvision's DenseNet loads it (strict) when the
  // architecture is one of its own.
  put("model", state_dict_value(state_dict(*const_cast<Trainer&>(trainer).model())));
  put("optimizer", optimizer.state_dict());
  // torch.cuda.amp.GradScaler.state_dict()'s layout, under the key torchvision's references use.
  if (scaler != nullptr) put("scaler", scaler->state_dict());
  put("epoch", integer(epoch));
  put("next_batch", integer(next_batch));
  put("global_step", integer(global_step));
  pth::Value schedule = pth::Value::dict();
  schedule.set_item(text("lr_type"), text(lr_type));
  schedule.set_item(text("step"), integer(global_step));
  put("schedule", schedule);
  put("best_top1", number(best_top1));
  put("best_epoch", integer(best_epoch));
  put("elapsed_seconds", number(elapsed));
  pth::Value partial = pth::Value::dict();
  partial.set_item(text("loss_sum"), number(loss_sum));
  partial.set_item(text("correct"), integer(correct));
  partial.set_item(text("images"), integer(images));
  partial.set_item(text("seconds"), number(epoch_seconds));
  partial.set_item(text("wait_seconds"), number(wait_seconds));
  partial.set_item(text("skipped_steps"), integer(skipped_steps));
  put("partial_epoch", partial);
  // A mid-epoch position continues exactly only on as many ranks.
  put("world_size", integer(world_size));
  pth::Value rng = pth::Value::dict();
  rng.set_item(text("torch_cpu"), pth::Value::tensor(cpu_rng_state()));
  put("rng", rng);
  put("config", text(config_to_yaml(trainer.config())));
  put("arch", text(trainer.config().arch));
  std::vector<pth::Value> class_names;
  for (const auto& name : classes) class_names.push_back(text(name));
  put("classes", pth::Value::list(std::move(class_names)));
  std::vector<pth::Value> records;
  for (const auto& record : history) records.push_back(record_value(record));
  put("history", pth::Value::list(std::move(records)));
  put("num_parameters", integer(plan.num_parameters()));
  return root;
}

}  // namespace

RunSummary Trainer::run(const std::function<void(int64_t)>& after_step) {
  State& s = *state_;
  const TrainConfig& config = s.config;
  const auto process_start = Clock::now();
  const auto elapsed = [&] { return s.elapsed_before + seconds_since(process_start); };
  RunSummary summary;
  summary.run_dir = s.run_dir;
  summary.best_top1 = std::nan("");

  if (config.test_only) {
    const EvalResult result = evaluate(s.model, *s.eval_loader, s.device, 0, s.group.get());
    print(*s.out, "%s: loss %.6f  top-1 %.2f%%  top-5 %.2f%%  (%lld images, %.1f s)\n",
          s.eval_name.c_str(), result.loss, result.top1, result.top5,
          static_cast<long long>(result.images), result.seconds);
    if (s.ema) {
      const EvalResult ema = evaluate(s.ema->module(), *s.eval_loader, s.device, 0, s.group.get());
      print(*s.out, "%s (model EMA): loss %.6f  top-1 %.2f%%  top-5 %.2f%%\n", s.eval_name.c_str(),
            ema.loss, ema.top1, ema.top5);
    }
    summary.last_top1 = result.top1;
    summary.epochs_completed = s.epoch;
    return summary;
  }

  // Weights that overflowed are neither evaluated, logged nor saved.
  const auto check_finite = [&] {
    for (const auto& named : s.model->named_parameters()) {
      TORCH_CHECK(torch::isfinite(named.value()).all().item<bool>(), "parameter ", named.key(),
                  " is no longer finite after global step ", s.global_step, " (epoch ",
                  s.next_batch == 0 ? s.epoch : s.epoch + 1, "): nothing was saved; ",
                  fs::exists(s.checkpointer->last_path())
                      ? "the last checkpoint (" + s.checkpointer->last_path() +
                            ") holds the last good weights"
                      : std::string("no checkpoint was written"),
                  ". Lower lr, or add warmup-epochs or clip");
    }
  };
  const auto save = [&](std::optional<int64_t> completed_epoch, bool is_best,
                        bool is_best_ema = false) {
    check_finite();
    if (s.group) {
      // Rank 0's checkpoint stands for every rank: check that it does, bit for bit.
      s.replica_tensors = distributed::check_replicas(*s.model, *s.group);
      ++s.replica_checks;
      if (!s.writes()) return;
    }
    pth::Value checkpoint =
        make_checkpoint(*this, s.plan, *s.optimizer, s.epoch, s.next_batch, s.global_step,
                        s.best_top1, s.best_epoch, elapsed(), s.loss_sum, s.correct, s.images,
                        s.epoch_seconds, s.wait_seconds, s.world_size, s.metrics->history(),
                        s.train_set->classes(), config.lr_type, s.scaler.get(), s.skipped_steps);
    if (s.ema) {  // timm's CheckpointSaver key: the averaged weights, for an exact resume
      checkpoint.set_item(text("state_dict_ema"), state_dict_value(s.ema->state_dict()));
      checkpoint.set_item(text("best_ema_top1"), number(s.best_ema_top1));
      checkpoint.set_item(text("best_ema_epoch"), integer(s.best_ema_epoch));
    }
    try {
      s.checkpointer->save(checkpoint, completed_epoch, is_best);
      if (is_best_ema) {
        write_file_atomically((fs::path(s.run_dir) / "best_ema.pth").string(),
                              pth::serialize_checkpoint(ema_weights_checkpoint(checkpoint)));
      }
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, "could not write a checkpoint (the previous one is intact): ",
                  error.what_without_backtrace());
    }
  };

  if (s.epoch >= config.epochs) {
    print(*s.out,
          "the run has already trained its %lld epoch%s: nothing to do (give --epochs N with a "
          "larger N to train further)\n",
          static_cast<long long>(s.epoch), s.epoch == 1 ? "" : "s");
  }
  const int64_t steps = s.train_loader->batches_per_epoch();
  const int64_t splits = config.num_batch_splits;

  while (s.epoch < config.epochs) {
    ProgressDisplay progress(*s.out, s.terminal, config.log_interval);
    ProgressState line;
    line.epoch = s.epoch + 1;
    line.epochs = config.epochs;
    line.steps = steps;
    s.model->train();
    s.train_loader->start_epoch(s.epoch, s.next_batch);
    const auto epoch_start = Clock::now();
    const double seconds_before = s.epoch_seconds;
    const double wait_before = s.wait_seconds;
    while (true) {
      // Data-parallel ranks stop together, at the step where any of them saw the request.
      if (s.group ? s.stop_agreed : stop_requested.load()) {
        progress.finish();
        s.epoch_seconds = seconds_before + seconds_since(epoch_start);
        s.wait_seconds = wait_before + s.train_loader->epoch_stats().wait_seconds;
        save(std::nullopt, false);
        const std::string where = s.next_batch == 0 ? "after epoch " + std::to_string(s.epoch)
                                                    : "at epoch " + std::to_string(s.epoch + 1) +
                                                          ", step " + std::to_string(s.next_batch);
        print(*s.out,
              "stopped %s: checkpoint %s written; continue with\n"
              "  densenet train --resume %s%s\n",
              where.c_str(), s.checkpointer->last_path().c_str(), s.run_dir.c_str(),
              s.group ? ("   (on " + std::to_string(s.world_size) +
                         " ranks again for an exact continuation: --nproc-per-node or torchrun)")
                            .c_str()
                      : "");
        s.out->flush();
        summary.interrupted = true;
        summary.epochs_completed = s.epoch;
        summary.global_step = s.global_step;
        summary.seconds = elapsed();
        return summary;
      }
      std::optional<data::Batch> batch = s.train_loader->next();
      if (!batch) break;
      if (s.group) {
        // A rank whose images of this step were all unreadable has nothing to compute, but
        // collectives pair up by order, so a rank that moved on alone would desynchronise the
        // run: the ranks agree, and all of them skip such a step (one tiny all-reduce a step).
        const torch::Tensor empty =
            torch::tensor({batch->labels.size(0) == 0 ? 1.0 : 0.0}, torch::kFloat64);
        s.group->allreduce(empty, distributed::Reduction::max, "the check for empty batches");
        if (empty.item<double>() > 0) {
          print(*s.out,
                "warning: epoch %lld step %lld skipped on every rank: a rank had no readable "
                "image in its part of the batch\n",
                static_cast<long long>(s.epoch + 1), static_cast<long long>(s.next_batch + 1));
          ++s.next_batch;
          continue;
        }
      }

      const double lr = s.schedule->lr_at(s.global_step);
      s.optimizer->set_lr(lr);
      s.optimizer->zero_grad();
      const int64_t n = batch->labels.size(0);
      const torch::Tensor images = batch->images.to(s.device, /*non_blocking=*/true);
      const torch::Tensor labels = batch->labels.to(s.device, /*non_blocking=*/true);
      BatchResult result =
          accumulate_gradients(s.model, images, labels, splits, config.label_smoothing,
                               s.buckets.get(), s.autocast, s.scaler.get());
      int64_t images_done = n;
      if (s.group) {
        const auto comm_start = Clock::now();
        s.buckets->finish();
        distributed::average_buffers(*s.model, *s.group);
        // One small all-reduce: the step's sums over the ranks, whether any rank's loss was not
        // finite, and whether any rank was asked to stop.
        const torch::Tensor sums = torch::tensor(
            {result.loss_sum, static_cast<double>(result.correct), static_cast<double>(n),
             result.finite ? 0.0 : 1.0, stop_requested.load() ? 1.0 : 0.0},
            torch::kFloat64);
        s.group->allreduce(sums, distributed::Reduction::sum, "the all-reduce of the step's loss");
        result.loss_sum = sums[0].item<double>();
        result.correct = static_cast<int64_t>(sums[1].item<double>());
        images_done = static_cast<int64_t>(sums[2].item<double>());
        result.finite = sums[3].item<double>() == 0;
        s.stop_agreed = sums[4].item<double>() > 0;
        s.comm_seconds += seconds_since(comm_start);
      }
      TORCH_CHECK(result.finite, "the loss is ",
                  std::isnan(result.loss_sum) ? "nan" : (result.loss_sum > 0 ? "inf" : "-inf"),
                  " at epoch ", s.epoch + 1, ", step ", s.next_batch + 1, " (global step ",
                  s.global_step + 1, "): training stopped before the update; ",
                  fs::exists(s.checkpointer->last_path())
                      ? "the last checkpoint (" + s.checkpointer->last_path() +
                            ") holds the last good weights"
                      : std::string("no checkpoint was written"),
                  ". Lower lr, or add warmup-epochs or clip");
      const double batch_loss = result.loss_sum;
      const int64_t batch_correct = result.correct;
      // Data-parallel ranks decide a loss-scaled step alike without a collective: the gradients
      // were all-reduced during backward (buckets->finish() above), so every rank unscales the
      // same bits and finds the same inf/NaN, and all skip or all step.
      if (!step_optimizer(*s.optimizer, config.clip, s.scaler.get())) ++s.skipped_steps;
      ++s.global_step;
      // After every step, skipped or not, as timm's train.py (num_updates counts both).
      if (s.ema) s.ema->update(*s.model, s.global_step);
      ++s.next_batch;
      s.loss_sum += batch_loss;
      s.correct += batch_correct;
      s.images += images_done;
      if (after_step) after_step(s.global_step);

      const double seconds = seconds_before + seconds_since(epoch_start);
      const double wait = wait_before + s.train_loader->epoch_stats().wait_seconds;
      line.step = s.next_batch;
      line.loss = s.loss_sum / static_cast<double>(s.images);
      line.top1 = 100.0 * static_cast<double>(s.correct) / static_cast<double>(s.images);
      line.images_per_second = static_cast<double>(s.images) / std::max(seconds, 1e-9);
      line.data_wait_share = seconds > 0 ? wait / seconds : 0.0;
      line.lr = lr;
      line.elapsed_seconds = seconds;
      progress.update(line);
    }
    const double train_seconds = seconds_before + seconds_since(epoch_start);
    const double wait = wait_before + s.train_loader->epoch_stats().wait_seconds;
    const double comm = s.comm_seconds;
    check_finite();
    const EvalResult eval = evaluate(s.model, *s.eval_loader, s.device, s.epoch, s.group.get());
    s.model->train();
    EvalResult ema_eval;
    if (s.ema) {
      ema_eval = evaluate(s.ema->module(), *s.eval_loader, s.device, s.epoch, s.group.get());
    }

    EpochRecord record;
    record.epoch = s.epoch + 1;
    record.lr = s.schedule->lr_at(std::max<int64_t>(s.global_step - 1, 0));
    record.train_loss = s.loss_sum / static_cast<double>(std::max<int64_t>(s.images, 1));
    record.train_top1 = 100.0 * static_cast<double>(s.correct) /
                        static_cast<double>(std::max<int64_t>(s.images, 1));
    record.eval_loss = eval.loss;
    record.eval_top1 = eval.top1;
    record.eval_top5 = eval.top5;
    record.epoch_seconds = train_seconds;
    record.eval_seconds = eval.seconds;
    record.images_per_second = static_cast<double>(s.images) / std::max(train_seconds, 1e-9);
    record.data_wait_share = train_seconds > 0 ? wait / train_seconds : 0;
    record.elapsed_seconds = elapsed();
    record.comm_wait_share = train_seconds > 0 ? comm / train_seconds : 0;
    record.skipped_steps = s.skipped_steps;
    record.loss_scale = s.scaler ? s.scaler->scale_value() : std::nan("");
    if (s.ema) {
      record.ema_eval_loss = ema_eval.loss;
      record.ema_eval_top1 = ema_eval.top1;
      record.ema_eval_top5 = ema_eval.top5;
      record.eval_seconds += ema_eval.seconds;
    }
    progress.finish();
    if (s.writes()) {
      s.metrics->log(record);
      try {
        plot_training_curves(s.metrics->history(), (fs::path(s.run_dir) / "curves.png").string(),
                             config.dataset + " " + config.arch);
      } catch (const c10::Error& error) {
        // A picture is not worth stopping a run for: the numbers are in metrics.csv.
        print(*s.out, "warning: curves.png not updated: %s\n", error.what_without_backtrace());
      }
    }

    const bool is_best = eval.top1 > s.best_top1;
    if (is_best) {
      s.best_top1 = eval.top1;
      s.best_epoch = s.epoch + 1;
    }
    const bool is_best_ema = s.ema && ema_eval.top1 > s.best_ema_top1;
    if (is_best_ema) {
      s.best_ema_top1 = ema_eval.top1;
      s.best_ema_epoch = s.epoch + 1;
    }
    ++s.epoch;
    s.restart_epoch_sums();
    save(s.epoch, is_best, is_best_ema);

    std::ostringstream scaling;  // loss scaling: the scale now and the steps it skipped
    if (s.scaler) {
      print(scaling, "  loss scale %g, %lld step%s skipped", record.loss_scale,
            static_cast<long long>(record.skipped_steps), record.skipped_steps == 1 ? "" : "s");
    }
    std::ostringstream ema_text;  // model-ema: the EMA's evaluation beside the model's
    if (s.ema) {
      print(ema_text, "  EMA %s loss %.4f top-1 %.2f%% top-5 %.2f%%", s.eval_name.c_str(),
            record.ema_eval_loss, record.ema_eval_top1, record.ema_eval_top5);
    }
    print(*s.out,
          "epoch %lld/%lld  train loss %.4f top-1 %.2f%%  %s loss %.4f top-1 %.2f%% "
          "top-5 %.2f%%%s  lr %.4g  %.0f img/s  data wait %.1f%%  epoch %.1f s + eval "
          "%.1f s  elapsed %s%s\n",
          static_cast<long long>(record.epoch), static_cast<long long>(config.epochs),
          record.train_loss, record.train_top1, s.eval_name.c_str(), record.eval_loss,
          record.eval_top1, record.eval_top5, ema_text.str().c_str(), record.lr,
          record.images_per_second, 100.0 * record.data_wait_share, record.epoch_seconds,
          record.eval_seconds, format_duration(record.elapsed_seconds).c_str(),
          scaling.str().c_str());
    if (s.group) {
      // What backward did not hide: the wait for the gradient buckets, the batch-norm statistics
      // and the step's sums, after the last backward (rank 0's clock).
      print(*s.out,
            "  data-parallel: %lld ranks, communication wait %.1f%% of the epoch (%.2f s)\n",
            static_cast<long long>(s.world_size),
            train_seconds > 0 ? 100.0 * comm / train_seconds : 0.0, comm);
    }
    s.out->flush();
    summary.last_top1 = eval.top1;
  }
  summary.epochs_completed = s.epoch;
  summary.global_step = s.global_step;
  summary.best_top1 = s.best_top1;
  summary.best_epoch = s.best_epoch;
  summary.seconds = elapsed();
  if (s.group) {
    print(*s.out,
          "data-parallel: the %lld ranks' replicas were bit-identical (%lld tensors) at %s\n",
          static_cast<long long>(s.world_size), static_cast<long long>(s.replica_tensors),
          s.replica_checks == 1
              ? "the checkpoint"
              : ("all " + std::to_string(s.replica_checks) + " checkpoints").c_str());
  }
  std::ostringstream ema_best;
  if (s.ema) {
    print(ema_best, "; EMA best %.2f%% at epoch %lld", s.best_ema_top1,
          static_cast<long long>(s.best_ema_epoch));
  }
  print(*s.out, "done: best %s top-1 %.2f%% at epoch %lld%s; run directory %s\n",
        s.eval_name.c_str(), s.best_top1, static_cast<long long>(s.best_epoch),
        ema_best.str().c_str(), s.run_dir.c_str());
  return summary;
}

void check_run_dir(const std::string& dir, const TrainConfig& config,
                   const std::string& resume_path) {
  std::error_code error;
  if (!fs::exists(dir, error)) return;
  TORCH_CHECK(fs::is_directory(dir, error), "output-dir '", dir, "' exists and is not a directory");
  TORCH_CHECK(!holds_run(dir) || is_resumed_run(dir, resume_path) || config.force, "output-dir '",
              dir, "' already holds a run: continue it with --resume ", dir,
              ", or overwrite it with --force, or choose another --output-dir");
}

TrainConfig saved_config(const std::string& resume) {
  const std::string path = Checkpointer::resolve(resume);
  const pth::Checkpoint checkpoint = pth::read_checkpoint(path);
  TrainConfig config;
  load_config_text(config, field(checkpoint.root, "config", path).as_string(),
                   path + " (its config)");
  return config;
}

EvalResult evaluate_weights(const TrainConfig& requested, const std::vector<std::string>& given,
                            const std::string& weights, std::ostream& out) {
  const WeightsFile file = read_weights_file(weights);
  const pth::Value* saved =
      file.root.is(pth::Value::Kind::Dict) ? file.root.find("config") : nullptr;
  TrainConfig config = requested;
  StateDict state;
  if (saved != nullptr && saved->is(pth::Value::Kind::String) && file.root.find("model")) {
    TrainConfig from_checkpoint;
    load_config_text(from_checkpoint, saved->as_string(), weights + " (its config)");
    // The architecture of a training checkpoint is the one it was trained with; a different one
    // asked for could only fail to load, or be silently ignored.
    for (const char* key :
         {"arch", "num-init-features", "growth-rate", "block-config", "bn-size", "compression"}) {
      if (std::find(given.begin(), given.end(), key) == given.end()) continue;
      // Compared as built: `--bn-size 4` for a checkpoint whose preset has 4 is the same model.
      TrainConfig candidate = from_checkpoint;
      copy_config_value(candidate, requested, key);
      const std::string has = effective_config_value(from_checkpoint, key);
      const std::string asked = effective_config_value(candidate, key);
      TORCH_CHECK_VALUE(
          has == asked, "'", weights, "' is a training checkpoint of ", from_checkpoint.arch,
          std::string(key) == "arch" ? std::string() : " (" + std::string(key) + " " + has + ")",
          ", not ", key, " ", asked, ": its architecture comes from it; drop --", key);
    }
    if (from_checkpoint.stem.empty()) {
      // The stem the weights were trained with (a 3x3 or a 7x7 first convolution), not one
      // that another --input-size would choose.
      const pth::Value* model = file.root.find("model");
      const pth::Value* conv0 =
          model->is(pth::Value::Kind::Dict) ? model->find("features.conv0.weight") : nullptr;
      if (conv0 != nullptr && conv0->is(pth::Value::Kind::Tensor)) {
        from_checkpoint.stem = conv0->as_tensor().size(-1) == 7 ? "imagenet" : "cifar";
      }
    }
    for (const std::string& key : given) copy_config_value(from_checkpoint, requested, key);
    config = from_checkpoint;
    config.resume.clear();
    config.test_only = false;
    // Evaluation runs in float32, so the run's mixed-precision keys do not apply (and a GPU run's
    // fp16 must not stop its evaluation on the CPU).
    // Nor does the file a run was fine-tuned from, which may be gone.
    for (const char* key :
         {"amp", "loss-scale", "loss-scale-init", "loss-scale-growth-interval", "pretrained"}) {
      copy_config_value(config, TrainConfig{}, key);
    }
    state = to_torchvision_keys(tensors_of(*file.root.find("model"), weights));
  } else {
    state = read_weights(weights);
  }
  try {
    validate(config);
  } catch (const c10::Error& error) {  // the options given do not make a model: a usage error
    TORCH_CHECK_VALUE(false, error.what_without_backtrace());
  }
  const torch::Device device = device_of(config);
  apply_threads(config);
  const DataSetup data = open_data(config, /*need_train=*/false);
  const int64_t classes = static_cast<int64_t>(data.eval_set->classes().size());
  DenseNetOptions options =
      model_options(config, data.eval_set->channels(), classes, data.input_size);
  options.memory(parse_memory_mode(config.memory == "auto" ? "efficient" : config.memory));
  DenseNet model(options);
  try {
    load_state_dict(*model, fit_final_norm_name(state, *model), /*strict=*/true);
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "the weights in '", weights, "' do not fit ", config.arch, " with ",
                data.eval_set->channels(), " input channels and ", classes, " classes (",
                config.dataset,
                "); give the architecture they were trained with (--arch and "
                "its overrides): ",
                error.what_without_backtrace());
  }
  model->to(device);
  const auto loader = make_eval_loader(config, data, device);
  const EvalResult result = evaluate(model, *loader, device);
  print(out, "%s %s (%s): loss %.4f  top-1 %.2f%%  top-5 %.2f%%  (%lld images, %.1f s)\n",
        config.dataset.c_str(), data.eval_name.c_str(), weights.c_str(), result.loss, result.top1,
        result.top5, static_cast<long long>(result.images), result.seconds);
  return result;
}

}  // namespace densenet::train
