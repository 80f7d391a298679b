// What a training run prints: the start-up summary, a line per epoch, and how it ended.
#include "densenet/model/presets.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/progress.h"

#include "train/print.h"
#include "train/run_directory.h"
#include "train/training_run.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

namespace densenet::train::detail {

std::string TrainingRun::run_dir() const {
  if (writes_run_dir || plan.resume_path.empty()) return config().output_dir;
  const std::filesystem::path directory = std::filesystem::path(plan.resume_path).parent_path();
  return directory.empty() ? "." : directory.string();
}

namespace {

void print_data_and_model(TrainingRun& run) {
  const TrainConfig& config = run.config();
  const DenseNetOptions& options = run.model.options;
  const ModelSetup& model = run.model;
  print(*run.out, "densenet train: %s\n",
        run.plan.resume_path.empty() ? ("run directory " + config.output_dir).c_str()
                                     : ("resuming " + run.plan.resume_path).c_str());
  print(*run.out, "data: %s\n      %s: %s\n", run.data.train_set->describe().c_str(),
        run.data.eval_name.c_str(), run.data.eval_set->describe().c_str());
  const std::string missing = data::missing_classes_warning(*run.data.eval_set, run.data.eval_name);
  // A warning goes to stderr, as every warning does, so that it is seen when stdout is a log.
  if (!missing.empty() && run.writes()) std::fprintf(stderr, "%s\n", missing.c_str());
  print(*run.out,
        "model: %s, %s %s, growth rate %lld, %s, input %lldx%lldx%lld, %lld classes, %.3f M "
        "parameters, %.3f GMAC per image\n",
        config.arch.c_str(),
        counted(static_cast<long long>(options.block_config().size()), "block").c_str(),
        format_int_list(options.block_config()).c_str(),
        static_cast<long long>(options.effective_growth_rate()), model.stem_line.c_str(),
        static_cast<long long>(options.in_channels()), static_cast<long long>(options.input_size()),
        static_cast<long long>(options.input_size()), static_cast<long long>(options.num_classes()),
        model.plan.num_parameters() / 1e6, model.plan.forward_macs() / 1e9);
  if (!model.pretrained_line.empty()) print(*run.out, "%s\n", model.pretrained_line.c_str());
  print(*run.out, "%s\n", model.memory_line.c_str());
}

void print_training(TrainingRun& run) {
  const TrainConfig& config = run.config();
  print(*run.out,
        "training: %s x %lld steps, batch %lld (%s), %s lr %g %s, weight decay %g, %s on %s\n",
        counted(config.epochs, "epoch").c_str(),
        static_cast<long long>(run.train_loader->batches_per_epoch()),
        static_cast<long long>(config.batch_size),
        counted(run.model.num_batch_splits, "split").c_str(), config.optimizer.c_str(), config.lr,
        config.lr_type.c_str(), config.weight_decay, counted(run.threads, "thread").c_str(),
        run.device.str().c_str());
  if (run.ema) {
    print(*run.out,
          "model EMA: decay %g per step%s (timm ModelEmaV3), evaluated each epoch; best_ema.pth "
          "holds its best\n",
          config.model_ema_decay, config.model_ema_warmup ? " after a warm-up" : "");
  }
}

void print_amp(TrainingRun& run) {
  const TrainConfig& config = run.config();
  if (!run.optimization.autocast) return;
  std::ostringstream scaling;
  if (run.optimization.scaler) {
    print(scaling,
          "dynamic loss scale from %g, x2 after %lld clean steps, x0.5 and the step skipped on "
          "inf/NaN gradients",
          config.loss_scale_init, static_cast<long long>(config.loss_scale_growth_interval));
  } else {
    scaling << "no loss scaling";
  }
  print(*run.out, "amp: %s autocast, float32 weights; %s\n", config.amp.c_str(),
        scaling.str().c_str());
}

void print_data_parallel(TrainingRun& run) {
  const TrainConfig& config = run.config();
  if (run.group) {
    print(*run.out,
          "data-parallel: %s (%s), %lld images per rank per step, %s of up to %s, "
          "dist-timeout %g s, %s\n",
          counted(run.world_size, "rank").c_str(), run.plan.backend.c_str(),
          static_cast<long long>(config.batch_size / run.world_size),
          counted(run.buckets->num_buckets(), "gradient bucket").c_str(),
          format_bytes(config.dist_bucket_size).c_str(), config.dist_timeout,
          config.sync_bn ? "sync-bn (batch statistics of the global batch)"
                         : "batch statistics per rank (running statistics averaged)");
  } else if (config.sync_bn) {
    // Kept rather than refused: a config written for several ranks also runs on one.
    print(*run.out,
          "note: sync-bn has no effect in a single process: batch statistics are those of each "
          "batch%s\n",
          run.model.num_batch_splits > 1 ? " split, as without sync-bn" : "");
  }
}

}  // namespace

void print_startup(TrainingRun& run) {
  print_data_and_model(run);
  print_training(run);
  print_amp(run);
  print_data_parallel(run);
  run.out->flush();
}

void print_epoch(TrainingRun& run, const EpochRecord& record) {
  std::ostringstream scaling;  // loss scaling: the scale now and the steps it skipped
  if (run.optimization.scaler) {
    print(scaling, "  loss scale %g, %s skipped", record.loss_scale,
          counted(record.skipped_steps, "step").c_str());
  }
  std::ostringstream ema;  // model-ema: the EMA's evaluation beside the model's
  if (run.ema) {
    print(ema, "  EMA %s loss %s top-1 %.2f%% top-5 %.2f%%", run.data.eval_name.c_str(),
          format_number(record.ema_eval_loss).c_str(), record.ema_eval_top1, record.ema_eval_top5);
  }
  print(*run.out,
        "epoch %lld/%lld  train loss %s top-1 %.2f%%  %s loss %s top-1 %.2f%% top-5 %.2f%%%s  "
        "lr %.4g  %.0f img/s  data wait %.1f%%  epoch %.1f s + eval %.1f s  elapsed %s%s\n",
        static_cast<long long>(record.epoch), static_cast<long long>(run.config().epochs),
        format_number(record.train_loss).c_str(), record.train_top1, run.data.eval_name.c_str(),
        format_number(record.eval_loss).c_str(), record.eval_top1, record.eval_top5,
        ema.str().c_str(), record.lr, record.images_per_second, 100.0 * record.data_wait_share,
        record.epoch_seconds, record.eval_seconds, format_duration(record.elapsed_seconds).c_str(),
        scaling.str().c_str());
  if (run.group) {
    // What backward did not hide: the wait for the gradient buckets, the batch-norm statistics
    // and the step's sums, after the last backward (rank 0's clock).
    print(*run.out,
          "  data-parallel: %lld ranks, communication wait %.1f%% of the epoch (%.2f s)\n",
          static_cast<long long>(run.world_size), 100.0 * record.comm_wait_share,
          record.comm_wait_share * record.epoch_seconds);
  }
  run.out->flush();
}

void print_stopped(TrainingRun& run) {
  const TrainingState& state = run.state;
  const std::string where = state.next_batch == 0
                                ? "after epoch " + std::to_string(state.epoch)
                                : "at epoch " + std::to_string(state.epoch + 1) + ", step " +
                                      std::to_string(state.next_batch);
  print(*run.out,
        "stopped %s: checkpoint %s written; continue with\n  densenet train --resume %s%s\n",
        where.c_str(), run.checkpointer->last_path().c_str(), run.config().output_dir.c_str(),
        run.group ? ("   (on " + std::to_string(run.world_size) +
                     " ranks again for an exact continuation: --nproc-per-node or torchrun)")
                        .c_str()
                  : "");
  run.out->flush();
}

void print_nothing_to_do(TrainingRun& run) {
  // A new output-dir is not created: it would hold a run without a checkpoint.
  const std::string& output_dir = run.config().output_dir;
  const std::string not_created = is_resumed_run(output_dir, run.plan.resume_path)
                                      ? std::string()
                                      : "; output-dir " + output_dir + " is not created";
  print(*run.out,
        "the run has already trained its %s: nothing to do (give --epochs N with a larger N to "
        "train further)%s\n",
        counted(run.state.epoch, "epoch").c_str(), not_created.c_str());
}

void print_done(TrainingRun& run) {
  if (run.group) {
    print(*run.out,
          "data-parallel: the %lld ranks' replicas were bit-identical (%lld tensors) at %s\n",
          static_cast<long long>(run.world_size), static_cast<long long>(run.replica_tensors),
          run.replica_checks == 1
              ? "the checkpoint"
              : ("all " + std::to_string(run.replica_checks) + " checkpoints").c_str());
  }
  std::ostringstream ema;
  if (run.ema) {
    print(ema, "; EMA best %.2f%% at epoch %lld", run.state.best_ema_top1,
          static_cast<long long>(run.state.best_ema_epoch));
  }
  print(*run.out, "done: best %s top-1 %.2f%% at epoch %lld%s; run directory %s\n",
        run.data.eval_name.c_str(), run.state.best_top1,
        static_cast<long long>(run.state.best_epoch), ema.str().c_str(), run.run_dir().c_str());
}

}  // namespace densenet::train::detail
