// The training loop. Trainer's constructor builds the parts of a run in order (run_setup.h), and
// run() is a short loop over epochs: train_one_epoch, then finish_epoch (evaluate, record,
// checkpoint). What the run prints is in run_report.cpp, what a checkpoint holds in
// training_state.cpp.
#include "densenet/train/trainer.h"

#include "densenet/distributed/replicas.h"
#include "densenet/io/pth_file.h"
#include "densenet/io/state_dict.h"
#include "densenet/model/load_weights.h"
#include "densenet/train/optimizer.h"

#include "train/print.h"
#include "train/run_directory.h"
#include "train/training_run.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <mutex>

namespace densenet::train {
namespace fs = std::filesystem;
using detail::Clock;
using detail::print;
using detail::seconds_since;
using detail::TrainingRun;

namespace {

std::atomic<bool> stop_requested{false};

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

// ---------------------------------------------------------------------------------------------
// The checkpoint: the live state captured, and a saved one restored.

// "the last checkpoint (DIR/last.pth) holds the last good weights", for the errors that stop a
// run without saving.
std::string last_good(const TrainingRun& run) {
  return fs::exists(run.checkpointer->last_path())
             ? "the last checkpoint (" + run.checkpointer->last_path() +
                   ") holds the last good weights"
             : std::string("no checkpoint was written");
}

const TrainingState& capture(TrainingRun& run) {
  TrainingState& state = run.state;
  state.model = state_dict(*run.model.model);
  state.optimizer = run.optimization.optimizer->state_dict();
  state.scaler.reset();
  if (run.optimization.scaler) state.scaler = run.optimization.scaler->state_dict();
  state.model_ema.reset();
  if (run.ema) state.model_ema = run.ema->state_dict();
  state.rng = cpu_rng_state();
  state.world_size = run.world_size;
  state.elapsed_seconds = run.elapsed();
  state.history = run.metrics->history();
  state.config_yaml = config_to_yaml(run.config());
  state.arch = run.config().arch;
  state.lr_type = run.config().lr_type;
  state.classes = run.data.train_set->classes();
  state.num_parameters = run.model.plan.num_parameters();
  return state;
}

// A mid-epoch position is exact only on the same world size (the padding of the shards, the
// per-rank batch statistics differ): on another one the epoch starts again from its first batch.
void adapt_to_world_size(TrainingRun& run, int64_t saved_world_size) {
  TrainingState& state = run.state;
  if (saved_world_size == run.world_size) return;
  if (state.next_batch == 0) {
    print(*run.out, "the checkpoint was written by %s, this run continues on %lld\n",
          detail::counted(saved_world_size, "rank").c_str(),
          static_cast<long long>(run.world_size));
    return;
  }
  print(*run.out,
        "the checkpoint was written by %s, this run has %lld: epoch %lld restarts at its first "
        "step (its %s done %s trained again; exact resumption needs the same world size)\n",
        detail::counted(saved_world_size, "rank").c_str(), static_cast<long long>(run.world_size),
        static_cast<long long>(state.epoch + 1), detail::counted(state.next_batch, "step").c_str(),
        state.next_batch == 1 ? "is" : "are");
  state.global_step -= state.next_batch;
  state.next_batch = 0;
  state.partial = EpochSums{};
}

void restore(TrainingRun& run, TrainingState saved) {
  const std::string& source = run.plan.resume_path;
  load_densenet_weights(*run.model.model, saved.model,
                        {source, run.config().arch, run.config().dataset});
  run.optimization.optimizer->load_state_dict(saved.optimizer);
  if (run.optimization.scaler) {
    TORCH_CHECK(saved.scaler, "'", source,
                "' is not a densenet training checkpoint: no 'scaler' (train from scratch, or "
                "load plain weights with 'densenet eval')");
    run.optimization.scaler->load_state_dict(*saved.scaler);
  }
  if (run.ema) {  // the config says the run keeps one, so its checkpoint has it
    TORCH_CHECK(saved.model_ema, "'", source,
                "' is not a densenet training checkpoint of a run with model-ema: no "
                "'state_dict_ema'");
    run.ema->load_state_dict(*saved.model_ema, source);
  }
  set_cpu_rng_state(saved.rng);
  if (run.writes_run_dir) run.metrics->restore(saved.history);
  run.elapsed_before = saved.elapsed_seconds;
  const int64_t saved_world_size = saved.world_size;
  run.state = std::move(saved);
  adapt_to_world_size(run, saved_world_size);
  TORCH_CHECK(run.state.next_batch <= run.train_loader->batches_per_epoch(), "'", source,
              "' stopped at batch ", run.state.next_batch, " of an epoch that now has ",
              run.train_loader->batches_per_epoch(), " (was the dataset changed?)");
}

// What a diverged run may try: lower lr, and warm-up or clipping where the run has none.
std::string divergence_advice(const TrainConfig& config) {
  const bool warmup = config.warmup_epochs == 0 && config.lr_type != "triangle";
  const bool clip = config.clip == 0;
  if (warmup && clip) return "Lower lr, or add warmup-epochs or clip";
  if (warmup) return "Lower lr, or add warmup-epochs";
  if (clip) return "Lower lr, or add clip";
  return "Lower lr";
}

// Weights that overflowed are neither evaluated, logged nor saved.
void check_finite_weights(const TrainingRun& run) {
  const TrainingState& state = run.state;
  for (const auto& named : run.model.model->named_parameters()) {
    TORCH_CHECK(torch::isfinite(named.value()).all().item<bool>(), "parameter ", named.key(),
                " is no longer finite after global step ", state.global_step, " (epoch ",
                state.next_batch == 0 ? state.epoch : state.epoch + 1, "): nothing was saved; ",
                last_good(run), ". ", divergence_advice(run.config()));
  }
}

// Rank 0's checkpoint stands for every rank: the replicas are checked to be bit-identical first.
void save(TrainingRun& run, std::optional<int64_t> completed_epoch, bool is_best,
          bool is_best_ema = false) {
  check_finite_weights(run);
  if (run.group) {
    run.replica_tensors = distributed::check_replicas(*run.model.model, *run.group);
    ++run.replica_checks;
    if (!run.writes()) return;
  }
  try {
    run.checkpointer->save(capture(run), completed_epoch, is_best, is_best_ema);
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "could not write a checkpoint (the previous one is intact): ",
                error.what_without_backtrace());
  }
}

// ---------------------------------------------------------------------------------------------
// The building of a run, in order.

// The run directory, its checkpointer and its metrics. A resumed run with no epoch left to
// train writes nothing, not even into a new output-dir (which would then hold a run without a
// checkpoint).
void open_run_directory(TrainingRun& run, const std::optional<TrainingState>& resumed) {
  const TrainConfig& config = run.config();
  const bool nothing_to_do = resumed && resumed->epoch >= config.epochs;
  run.writes_run_dir = !config.test_only && run.writes() && !nothing_to_do;
  if (run.writes_run_dir) {
    detail::prepare_run_dir(config.output_dir, run.plan.resume_path);
    detail::carry_best_checkpoint(config.output_dir, run.plan.resume_path);
  }
  run.checkpointer = std::make_unique<Checkpointer>(config.output_dir, config.save_interval,
                                                    config.keep_checkpoints);
  run.metrics = std::make_unique<MetricLogger>(config.output_dir);
}

// A new event file; a resumed run first has TensorBoard drop what the interrupted run logged
// after its checkpoint.
void open_tensorboard(TrainingRun& run) {
  if (!run.config().tensorboard) return;
  TensorBoardLoggerOptions board;
  board.run_dir = run.config().output_dir;
  board.eval_name = run.data.eval_name;
  board.log_interval = run.config().log_interval;
  board.loss_scaling = run.optimization.scaler != nullptr;
  board.data_parallel = run.group != nullptr;
  run.tensorboard = std::make_unique<TensorBoardLogger>(board, *run.out);
  if (!run.plan.resume_path.empty()) {
    run.tensorboard->resume(run.state.global_step, run.state.partial.seconds,
                            run.state.partial.wait_seconds);
  }
}

// Every rank starts from rank 0's weights and buffers (a fresh run's are equal already, by the
// seed; this makes it so whatever happened, as DDP's constructor does), gradients go in buckets,
// and sync-bn all-reduces the batch statistics.
void start_data_parallel(TrainingRun& run) {
  DenseNet& model = run.model.model;
  distributed::broadcast_from_rank0(*model, *run.group);
  run.buckets = std::make_unique<distributed::GradientBuckets>(model->parameters(), run.group,
                                                               run.config().dist_bucket_size);
  if (!run.config().sync_bn) return;
  model->sync_batch_norm(
      [group = run.group, &comm = run.state.partial.comm_seconds](torch::Tensor& sums) {
        const auto start = Clock::now();
        group->allreduce(sums, distributed::Reduction::sum, "the sync-bn statistics");
        comm += seconds_since(start);
      });
}

// ---------------------------------------------------------------------------------------------
// One training step.

// A rank whose images of this step were all unreadable has nothing to compute, but collectives
// pair up by order, so a rank that moved on alone would desynchronise the run: the ranks agree,
// and all of them skip such a step (one tiny all-reduce a step).
bool skip_empty_step(TrainingRun& run, const data::Batch& batch) {
  const torch::Tensor empty =
      torch::tensor({batch.labels.size(0) == 0 ? 1.0 : 0.0}, torch::kFloat64);
  run.group->allreduce(empty, distributed::Reduction::max, "the check for empty batches");
  if (empty.item<double>() == 0) return false;
  // Warnings go to stderr (rank 0's), beside the loader's, not into the epoch lines.
  if (run.writes()) {
    print(
        std::cerr,
        "warning: epoch %lld step %lld skipped on every rank: a rank had no readable image in its "
        "part of the batch\n",
        static_cast<long long>(run.state.epoch + 1),
        static_cast<long long>(run.state.next_batch + 1));
  }
  ++run.state.next_batch;
  return true;
}

// Data-parallel: the gradients' last bucket, the batch-norm running statistics, then one small
// all-reduce of the step's sums over the ranks, whether any rank's loss was not finite, and
// whether any rank was asked to stop. Returns the images of the step over all ranks.
int64_t reduce_step(TrainingRun& run, BatchResult& result, int64_t images) {
  const auto start = Clock::now();
  run.buckets->finish();
  distributed::average_buffers(*run.model.model, *run.group);
  const torch::Tensor sums = torch::tensor(
      {result.loss_sum, static_cast<double>(result.correct), static_cast<double>(images),
       result.finite ? 0.0 : 1.0, stop_requested.load() ? 1.0 : 0.0},
      torch::kFloat64);
  run.group->allreduce(sums, distributed::Reduction::sum, "the all-reduce of the step's loss");
  result.loss_sum = sums[0].item<double>();
  result.correct = static_cast<int64_t>(sums[1].item<double>());
  result.finite = sums[3].item<double>() == 0;
  run.stop_agreed = sums[4].item<double>() > 0;
  run.state.partial.comm_seconds += seconds_since(start);
  return static_cast<int64_t>(sums[2].item<double>());
}

void check_finite_loss(const TrainingRun& run, const BatchResult& result) {
  const TrainingState& state = run.state;
  TORCH_CHECK(result.finite, "the loss is ",
              std::isnan(result.loss_sum) ? "nan" : (result.loss_sum > 0 ? "inf" : "-inf"),
              " at epoch ", state.epoch + 1, ", step ", state.next_batch + 1, " (global step ",
              state.global_step + 1, "): training stopped before the update; ", last_good(run),
              ". ", divergence_advice(run.config()));
}

// A loss scale below float's smallest normal has underflowed: the scaled loss is 0 or
// denormal, its gradients carry nothing, and every step from here is skipped.
void check_loss_scale(const TrainingRun& run) {
  const TrainingState& state = run.state;
  const double scale = run.optimization.scaler->scale_value();
  TORCH_CHECK(scale >= std::numeric_limits<float>::min(), "the loss scale fell to ", scale,
              " (below float's smallest normal, ", std::numeric_limits<float>::min(), ") at epoch ",
              state.epoch + 1, ", step ", state.next_batch + 1, " after ",
              state.partial.skipped_steps,
              " skipped steps this epoch: the gradients are inf/NaN at any scale, the run has "
              "diverged; nothing was saved; ",
              last_good(run), ". ", divergence_advice(run.config()));
}

// data -> forward -> loss -> backward (per split) -> (all-reduce) -> clip -> step. Returns the
// step's sums over the ranks and its learning rate (TensorBoard's point; the clock is the
// caller's).
StepScalars train_step(TrainingRun& run, const data::Batch& batch) {
  TrainingState& state = run.state;
  detail::Optimization& opt = run.optimization;
  const double lr = opt.schedule->lr_at(state.global_step);
  opt.optimizer->set_lr(lr);
  opt.optimizer->zero_grad();
  const torch::Tensor images = batch.images.to(run.device, /*non_blocking=*/true);
  const torch::Tensor labels = batch.labels.to(run.device, /*non_blocking=*/true);
  BatchResult result = accumulate_gradients(
      run.model.model, images, labels, run.model.num_batch_splits, run.config().label_smoothing,
      run.buckets.get(), opt.autocast, opt.scaler.get());
  int64_t images_done = labels.size(0);
  if (run.group) images_done = reduce_step(run, result, images_done);
  check_finite_loss(run, result);
  // Data-parallel ranks decide a loss-scaled step alike without a collective: the gradients were
  // all-reduced during backward, so every rank unscales the same bits and finds the same
  // inf/NaN, and all skip or all step.
  if (!step_optimizer(*opt.optimizer, run.config().clip, opt.scaler.get())) {
    ++state.partial.skipped_steps;
    check_loss_scale(run);
  }
  ++state.global_step;
  // After every step, skipped or not, as timm's train.py (its num_updates counts both).
  if (run.ema) run.ema->update(*run.model.model, state.global_step);
  ++state.next_batch;
  state.partial.loss_sum += result.loss_sum;
  state.partial.correct += result.correct;
  state.partial.images += images_done;
  StepScalars step;
  step.global_step = state.global_step;
  step.loss_sum = result.loss_sum;
  step.correct = result.correct;
  step.images = images_done;
  step.lr = lr;
  if (opt.scaler) step.loss_scale = opt.scaler->scale_value();
  return step;
}

// ---------------------------------------------------------------------------------------------
// One epoch.

// The epoch's clock: its seconds and data wait continue those of an interrupted epoch.
struct EpochClock {
  Clock::time_point start = Clock::now();
  double seconds_before = 0, wait_before = 0;
  double seconds() const { return seconds_before + seconds_since(start); }
  double wait(const data::DataLoader& loader) const {
    return wait_before + loader.epoch_stats().wait_seconds;
  }
  void store(const data::DataLoader& loader, EpochSums& sums) const {
    sums.seconds = seconds();
    sums.wait_seconds = wait(loader);
  }
};

ProgressState progress_of(const TrainingRun& run, const EpochClock& clock, double lr) {
  const EpochSums& sums = run.state.partial;
  ProgressState line;
  line.epoch = run.state.epoch + 1;
  line.epochs = run.config().epochs;
  line.steps = run.train_loader->batches_per_epoch();
  line.step = run.state.next_batch;
  const double seconds = clock.seconds();
  const auto images = static_cast<double>(sums.images);
  line.loss = sums.loss_sum / images;
  line.top1 = 100.0 * static_cast<double>(sums.correct) / images;
  line.images_per_second = images / std::max(seconds, 1e-9);
  line.data_wait_share = seconds > 0 ? clock.wait(*run.train_loader) / seconds : 0.0;
  line.lr = lr;
  line.elapsed_seconds = seconds;
  return line;
}

// Trains from the loader's position to the end of the epoch. Returns false when a stop was
// requested (Ctrl-C, SIGTERM): the epoch's sums so far are then in run.state, for the checkpoint.
bool train_one_epoch(TrainingRun& run, const std::function<void(int64_t)>& after_step) {
  ProgressDisplay progress(*run.out, run.terminal, run.config().log_interval);
  run.model.model->train();
  run.train_loader->start_epoch(run.state.epoch, run.state.next_batch);
  const EpochClock clock{Clock::now(), run.state.partial.seconds, run.state.partial.wait_seconds};
  bool stopped = false;
  while (true) {
    // Data-parallel ranks stop together, at the step where any of them saw the request.
    stopped = run.group ? run.stop_agreed : stop_requested.load();
    if (stopped) break;
    const std::optional<data::Batch> batch = run.train_loader->next();
    if (!batch) break;
    if (run.group && skip_empty_step(run, *batch)) continue;
    StepScalars step = train_step(run, *batch);
    if (after_step) after_step(run.state.global_step);
    progress.update(progress_of(run, clock, step.lr));
    if (run.tensorboard) {
      step.epoch_seconds = clock.seconds();
      step.epoch_wait_seconds = clock.wait(*run.train_loader);
      run.tensorboard->step(step);
    }
  }
  progress.finish();
  clock.store(*run.train_loader, run.state.partial);
  return !stopped;
}

EpochRecord epoch_record(const TrainingRun& run, const EvalResult& eval) {
  const EpochSums& sums = run.state.partial;
  const double images = static_cast<double>(std::max<int64_t>(sums.images, 1));
  EpochRecord record;
  record.epoch = run.state.epoch + 1;
  record.lr = run.optimization.schedule->lr_at(std::max<int64_t>(run.state.global_step - 1, 0));
  record.train_loss = sums.loss_sum / images;
  record.train_top1 = 100.0 * static_cast<double>(sums.correct) / images;
  record.eval_loss = eval.loss;
  record.eval_top1 = eval.top1;
  record.eval_top5 = eval.top5;
  record.epoch_seconds = sums.seconds;
  record.eval_seconds = eval.seconds;
  record.images_per_second = static_cast<double>(sums.images) / std::max(sums.seconds, 1e-9);
  record.data_wait_share = sums.seconds > 0 ? sums.wait_seconds / sums.seconds : 0;
  record.elapsed_seconds = run.elapsed();
  record.comm_wait_share = sums.seconds > 0 ? sums.comm_seconds / sums.seconds : 0;
  record.skipped_steps = sums.skipped_steps;
  record.loss_scale =
      run.optimization.scaler ? run.optimization.scaler->scale_value() : std::nan("");
  return record;
}

// A diverged run is stopped like a non-finite training loss: its evaluation, and the weights
// that gave it, are neither logged nor saved.
void check_finite_evaluation(const TrainingRun& run, const EvalResult& eval) {
  TORCH_CHECK(std::isfinite(eval.loss), "the ", run.data.eval_name, " loss is ", eval.loss,
              " after epoch ", run.state.epoch + 1, ": the weights diverged; nothing was saved; ",
              last_good(run), ". ", divergence_advice(run.config()));
}

void log_epoch(TrainingRun& run, const EpochRecord& record) {
  if (!run.writes()) return;
  run.metrics->log(record);
  try {
    plot_training_curves(run.metrics->history(),
                         (fs::path(run.config().output_dir) / "curves.png").string(),
                         run.config().dataset + " " + run.config().arch);
  } catch (const c10::Error& error) {
    // A picture is not worth stopping a run for: the numbers are in metrics.csv.
    // On stdout: on a full disk the checkpoint's error follows, the one line on stderr.
    print(*run.out, "warning: curves.png not updated: %s\n", error.what_without_backtrace());
  }
}

// The model EMA's evaluation beside the model's (its time counted in the epoch's eval time).
void evaluate_ema(TrainingRun& run, EpochRecord& record) {
  if (!run.ema) return;
  const EvalResult ema =
      evaluate(run.ema->module(), *run.eval_loader, run.device, run.state.epoch, run.group.get());
  record.ema_eval_loss = ema.loss;
  record.ema_eval_top1 = ema.top1;
  record.ema_eval_top5 = ema.top5;
  record.eval_seconds += ema.seconds;
}

// Whether `top1` beats `best`, which then becomes it (at `epoch`).
bool improves(double top1, int64_t epoch, double& best, int64_t& best_epoch) {
  if (!(top1 > best)) return false;
  best = top1;
  best_epoch = epoch;
  return true;
}

// An epoch that trained on nothing (every image unreadable) or never updated the weights
// (every step skipped for inf/NaN gradients under the loss scale) ends the run: it would
// otherwise pass for a trained epoch, and its evaluation might even save a best.pth.
void check_epoch_trained(const TrainingRun& run) {
  const EpochSums& sums = run.state.partial;
  const int64_t epoch = run.state.epoch + 1;
  TORCH_CHECK(sums.images > 0, "epoch ", epoch,
              " had no readable training image: ", run.train_loader->epoch_stats().skipped,
              " were skipped as unreadable (see the warnings above); nothing was saved; ",
              last_good(run));
  if (!run.optimization.scaler || sums.skipped_steps < run.state.next_batch) return;
  TORCH_CHECK(false, "epoch ", epoch, ": all ", sums.skipped_steps,
              " optimiser steps were skipped for inf/NaN gradients (loss scale now ",
              run.optimization.scaler->scale_value(),
              "): the run has diverged; nothing was saved; ", last_good(run), ". ",
              divergence_advice(run.config()));
}

// evaluate -> record -> log -> checkpoint. The epoch's line is printed before the checkpoint is
// written, so that a failed write (a full disk) does not hide how the epoch went.
double finish_epoch(TrainingRun& run) {
  check_epoch_trained(run);
  check_finite_weights(run);
  const EvalResult eval =
      evaluate(run.model.model, *run.eval_loader, run.device, run.state.epoch, run.group.get());
  run.model.model->train();
  check_finite_evaluation(run, eval);
  EpochRecord record = epoch_record(run, eval);
  evaluate_ema(run, record);
  log_epoch(run, record);
  TrainingState& state = run.state;
  const bool is_best = improves(eval.top1, record.epoch, state.best_top1, state.best_epoch);
  const bool is_best_ema = run.ema && improves(record.ema_eval_top1, record.epoch,
                                               state.best_ema_top1, state.best_ema_epoch);
  ++state.epoch;
  state.next_batch = 0;
  state.partial = EpochSums{};
  print_epoch(run, record);
  // The epoch's train/ points go to disk first: a checkpoint write that fails (a full disk)
  // ends the run, and they would go with it. (Steps past the checkpoint are purged on resume.)
  if (run.tensorboard) run.tensorboard->flush();
  save(run, state.epoch, is_best, is_best_ema);
  // After the checkpoint: an epoch's point in TensorBoard always has its checkpoint on disk.
  if (run.tensorboard) run.tensorboard->epoch(record);
  return eval.top1;
}

// How the run stands; best_top1 is NaN unless it trained to the end.
RunSummary summary_of(const TrainingRun& run) {
  RunSummary summary;
  summary.run_dir = run.run_dir();
  summary.epochs_completed = run.state.epoch;
  summary.global_step = run.state.global_step;
  summary.best_top1 = std::nan("");
  summary.best_epoch = run.state.best_epoch;
  summary.seconds = run.elapsed();
  return summary;
}

// test-only: the resumed weights evaluated once.
RunSummary evaluate_only(TrainingRun& run) {
  const EvalResult result =
      evaluate(run.model.model, *run.eval_loader, run.device, 0, run.group.get());
  print(*run.out, "%s: loss %.6f  top-1 %.2f%%  top-5 %.2f%%  (%lld images, %.1f s)\n",
        run.data.eval_name.c_str(), result.loss, result.top1, result.top5,
        static_cast<long long>(result.images), result.seconds);
  if (run.ema) {
    const EvalResult ema =
        evaluate(run.ema->module(), *run.eval_loader, run.device, 0, run.group.get());
    print(*run.out, "%s (model EMA): loss %.6f  top-1 %.2f%%  top-5 %.2f%%\n",
          run.data.eval_name.c_str(), ema.loss, ema.top1, ema.top5);
  }
  RunSummary summary = summary_of(run);
  summary.last_top1 = result.top1;
  return summary;
}

}  // namespace

void request_stop() {
  stop_requested.store(true);
}
void clear_stop_request() {
  stop_requested.store(false);
}

Trainer::Trainer(TrainConfig config, std::ostream& out, bool terminal,
                 std::shared_ptr<distributed::ProcessGroup> group)
    : Trainer(plan_training({std::move(config), std::nullopt, group ? group->world_size() : 1,
                             group != nullptr}),
              out, terminal, group) {}

Trainer::Trainer(TrainPlan plan, std::ostream& out, bool terminal,
                 std::shared_ptr<distributed::ProcessGroup> group)
    : run_(std::make_unique<TrainingRun>()) {
  TrainingRun& run = *run_;
  run.plan = std::move(plan);
  run.group = std::move(group);
  if (run.group) {
    run.rank = run.group->rank();
    run.world_size = run.group->world_size();
    run.local_world_size = run.group->environment().local_world_size;
  }
  TORCH_CHECK(run.world_size == run.plan.world_size, "the plan is for ", run.plan.world_size,
              " ranks, the process group has ", run.world_size);
  run.out = run.writes() ? &out : &run.no_output;
  run.terminal = terminal && run.writes();
  const TrainConfig& config = run.config();
  run.device = detail::device_of(config, run.group ? &run.group->environment() : nullptr);
  run.threads = detail::apply_threads(config, run.local_world_size);
  torch::manual_seed(static_cast<uint64_t>(config.seed));
  const int64_t local_batch = config.batch_size / run.world_size;  // this rank's images a step

  run.data = detail::open_data(config, /*need_train=*/true);
  run.train_loader =
      detail::make_train_loader(config, run.data, run.device, run.rank, run.world_size);
  run.eval_loader =
      detail::make_eval_loader(config, run.data, run.device, run.rank, run.world_size);
  run.model = detail::build_model(config, run.data, run.device, local_batch);
  run.plan.config.num_batch_splits = run.model.num_batch_splits;  // memory: auto may add splits
  if (config.model_ema) {
    ModelEmaOptions ema;
    ema.decay = config.model_ema_decay;
    ema.use_warmup = config.model_ema_warmup;
    run.ema = std::make_unique<ModelEma>(run.model.model, ema);
  }
  run.optimization = detail::build_optimization(config, run.model.model, run.device,
                                                run.train_loader->batches_per_epoch());
  std::optional<TrainingState> resumed;
  if (!run.plan.resume_path.empty()) {
    resumed =
        from_checkpoint(pth::read_checkpoint(run.plan.resume_path).root, run.plan.resume_path);
  }
  open_run_directory(run, resumed);
  if (resumed) restore(run, std::move(*resumed));
  if (run.group) start_data_parallel(run);
  // A resumed run rewrites its record too: keys such as epochs may have changed, and the
  // directory may have moved.
  if (run.writes_run_dir) {
    detail::write_run_record(config.output_dir, config, run.data.train_set->classes());
    open_tensorboard(run);
  }
  detail::print_startup(run);
}

Trainer::~Trainer() = default;

const TrainConfig& Trainer::config() const {
  return run_->config();
}
const std::string& Trainer::run_dir() const {
  return run_->config().output_dir;
}
DenseNet& Trainer::model() {
  return run_->model.model;
}

RunSummary Trainer::run(const std::function<void(int64_t)>& after_step) {
  TrainingRun& run = *run_;
  run.process_start = Clock::now();
  if (run.config().test_only) return evaluate_only(run);
  if (run.state.epoch >= run.config().epochs) detail::print_nothing_to_do(run);
  double last_top1 = 0;
  while (run.state.epoch < run.config().epochs) {
    if (!train_one_epoch(run, after_step)) {
      if (run.tensorboard) run.tensorboard->flush();  // before a checkpoint that may fail
      save(run, std::nullopt, false);
      detail::print_stopped(run);
      RunSummary summary = summary_of(run);
      summary.interrupted = true;
      summary.last_top1 = last_top1;
      return summary;
    }
    last_top1 = finish_epoch(run);
  }
  detail::print_done(run);
  RunSummary summary = summary_of(run);
  summary.best_top1 = run.state.best_top1;
  summary.last_top1 = last_top1;
  return summary;
}

}  // namespace densenet::train
