#pragma once

// The parts a training run is built from, one builder each, in the order the Trainer calls them
// (timm's train.py: data, model, optimizer and schedule, ...). `densenet eval` builds the data
// and the model with the same functions.
#include "densenet/data/dataset.h"
#include "densenet/data/loader.h"
#include "densenet/data/transforms.h"
#include "densenet/distributed/environment.h"
#include "densenet/model/architecture.h"
#include "densenet/model/densenet.h"
#include "densenet/train/config.h"
#include "densenet/train/loss_scaler.h"
#include "densenet/train/optimizer.h"
#include "densenet/train/schedule.h"

#include <c10/core/ScalarType.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train::detail {

/// The compute device of a run, or of the data-parallel rank `rank` (cuda is cuda:LOCAL_RANK:
/// distributed::rank_device). Throws c10::Error for CUDA where this LibTorch has none.
torch::Device device_of(const TrainConfig& config, const distributed::Environment* rank = nullptr);

/// Sets the compute threads: `threads`, or the CPUs this process may use shared by the ranks of
/// this machine (local world size). Returns the number set.
int apply_threads(const TrainConfig& config, int64_t local_world_size = 1);

/// The datasets of a run and their transforms.
struct RunData {
  std::shared_ptr<data::Dataset> train_set;  // null when only evaluating
  std::shared_ptr<data::Dataset> eval_set;   // the test split, or the held-out validation part
  std::string eval_name;                     // "test" or "validation"
  int64_t input_size = 0;                    // pixels, after the dataset's default
  std::shared_ptr<data::Transform> train_transform, eval_transform;
};

/// Opens the splits (valid-size holds images out of the training set; max-*-samples keep the
/// first images) and makes their transforms. The evaluation split's labels index the training
/// split's classes, by name; without a training split (eval), `classes` (a checkpoint's, named
/// by `classes_source` in errors) when given. Throws c10::Error when the data cannot be read, or
/// an evaluation class folder is not one of those classes.
RunData open_data(const TrainConfig& config, bool need_train,
                  const std::vector<std::string>& classes = {},
                  const std::string& classes_source = {});

/// Training batches: shuffled, the short last batch dropped (as timm does: its batch statistics
/// would be noisy, or missing for one image), rank `rank`'s part of each global batch.
std::unique_ptr<data::DataLoader> make_train_loader(const TrainConfig& config, const RunData& data,
                                                    const torch::Device& device, int64_t rank,
                                                    int64_t world_size);

/// Evaluation batches: every image in order; rank `rank`'s contiguous block of the set (the
/// blocks disjoint and covering it, so all-reduced sums count each image once).
std::unique_ptr<data::DataLoader> make_eval_loader(const TrainConfig& config, const RunData& data,
                                                   const torch::Device& device, int64_t rank = 0,
                                                   int64_t world_size = 1);

/// The fewest images a batch norm sees in one forward pass: the smallest of the `splits` pieces
/// of this rank's `local_batch` (torch's chunk), times the ranks under sync-bn.
int64_t smallest_piece(const TrainConfig& config, int64_t local_batch, int64_t splits);

/// The model on its device, in the memory mode `memory` chose, with what the start-up summary
/// says of it.
struct ModelSetup {
  DenseNet model{nullptr};
  DenseNetOptions options;
  ArchitecturePlan plan;
  int64_t num_batch_splits = 1;  // the config's, raised where memory: auto needs pieces
  std::string memory_line;       // "memory: efficient, predicted step peak 119.53 MiB"
  std::string stem_line;         // which stem, and why (when the size chose it)
  std::string pretrained_line;   // what `pretrained` loaded; "" without
};

/// Builds the model for the data (its channels, classes and input size), chooses the memory
/// mode (memory: auto within memory-budget or the available memory), starts a new run from the
/// `pretrained` weights (load_pretrained; a resumed run has its own), and refuses a CPU step
/// that the memory plan says cannot fit (the kernel's OOM killer would end the run without a
/// word). `local_batch`: this rank's images per step. Throws c10::Error; c10::ValueError when a
/// batch norm would see one value per channel (check_batch_norm_values).
ModelSetup build_model(const TrainConfig& config, const RunData& data, const torch::Device& device,
                       int64_t local_batch);

/// The optimiser, its mixed precision and its schedule.
struct Optimization {
  std::unique_ptr<Optimizer> optimizer;
  std::optional<c10::ScalarType> autocast;  // amp: the autocast dtype; nullopt for float32
  std::unique_ptr<LossScaler> scaler;       // loss-scale dynamic; null without
  std::unique_ptr<Schedule> schedule;       // the learning rate of every global step
};

Optimization build_optimization(const TrainConfig& config, DenseNet& model,
                                const torch::Device& device, int64_t steps_per_epoch);

}  // namespace densenet::train::detail
