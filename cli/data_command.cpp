// densenet data: times the data loader alone (no model) and prints its images/s and the cost of
// each stage per image, so that a slow input pipeline is found before it slows training.

#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/dataset.h"
#include "densenet/data/loader.h"
#include "densenet/data/transforms.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

namespace densenet::cli {

namespace {

struct DataArgs {
  data::DatasetOptions dataset;
  std::string split = "train";
  std::string transform = "auto";  // auto: train augmentation on train, eval on test
  int64_t input_size = 0;          // 0: the dataset's own size (224 for imagefolder)
  int64_t batch = 64;
  int64_t workers = 2;
  int64_t prefetch = 4;
  int64_t batches = 0;  // 0: a whole epoch
  int64_t epochs = 1;
  uint64_t seed = 0;
  int64_t valid_size = 0;
  double color_jitter = 0.0;
  double lighting = 0.0;
  bool json = false;
};

int64_t native_size(const DataArgs& args) {
  const std::string& name = args.dataset.name;
  if (name == "mnist" || name == "fashion-mnist") return 28;
  if (name == "cifar10" || name == "cifar100") return 32;
  if (name == "synthetic") return args.dataset.synthetic_image_size;
  return 224;
}

double per_image_us(double seconds, int64_t images) {
  return images > 0 ? 1e6 * seconds / static_cast<double>(images) : 0.0;
}

int run_data(DataArgs args) {
  if (args.split != "train" && args.split != "test") {
    throw UsageError("--split must be train or test, got '" + args.split + "'");
  }
  if (args.transform != "auto" && args.transform != "train" && args.transform != "eval") {
    throw UsageError("--transform must be auto, train or eval, got '" + args.transform + "'");
  }
  const data::Split split = args.split == "train" ? data::Split::Train : data::Split::Test;
  std::shared_ptr<data::Dataset> dataset = data::open_dataset(args.dataset, split);
  if (args.valid_size > 0) {
    if (split != data::Split::Train) throw UsageError("--valid-size needs --split train");
    dataset = data::split_validation(dataset, args.valid_size, args.seed).first;
  }
  const int64_t input_size = args.input_size > 0 ? args.input_size : native_size(args);
  const data::Normalization norm = data::default_normalization(args.dataset.name);
  const bool train =
      args.transform == "train" || (args.transform == "auto" && split == data::Split::Train);
  data::AugmentOptions augment;
  augment.brightness = augment.contrast = augment.saturation = args.color_jitter;
  augment.lighting = args.lighting;
  const auto transform =
      train ? data::make_train_transform(args.dataset.name, input_size, norm, augment)
            : data::make_eval_transform(args.dataset.name, input_size, norm);
  data::LoaderOptions options;
  options.batch_size = args.batch;
  options.workers = args.workers;
  options.prefetch_batches = args.prefetch;
  options.seed = args.seed;
  data::DataLoader loader(dataset, transform, options);

  if (!args.json) {
    std::printf("dataset:   %s\n", dataset->describe().c_str());
    std::printf("transform: %s, %lldx%lld\n", train ? "train augmentation" : "eval",
                static_cast<long long>(input_size), static_cast<long long>(input_size));
    std::printf("loader:    batch %lld, %lld workers, prefetch %lld batches, seed %llu\n",
                static_cast<long long>(args.batch), static_cast<long long>(args.workers),
                static_cast<long long>(args.prefetch), static_cast<unsigned long long>(args.seed));
  }
  nlohmann::json epochs = nlohmann::json::array();
  for (int64_t epoch = 0; epoch < args.epochs; ++epoch) {
    loader.start_epoch(epoch);
    int64_t batches = 0;
    const auto start = std::chrono::steady_clock::now();
    while (args.batches == 0 || batches < args.batches) {
      if (!loader.next()) break;
      ++batches;
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const data::LoaderStats s = loader.epoch_stats();
    const double rate = wall > 0 ? static_cast<double>(s.images) / wall : 0.0;
    const double stages[4] = {s.read_seconds, s.decode_seconds, s.augment_seconds,
                              s.collate_seconds};
    const double stage_total = stages[0] + stages[1] + stages[2] + stages[3];
    if (args.json) {
      epochs.push_back({{"epoch", epoch},
                        {"batches", batches},
                        {"images", s.images},
                        {"skipped", s.skipped},
                        {"seconds", wall},
                        {"images_per_second", rate},
                        {"wait_seconds", s.wait_seconds},
                        {"read_us", per_image_us(s.read_seconds, s.images)},
                        {"decode_us", per_image_us(s.decode_seconds, s.images)},
                        {"augment_us", per_image_us(s.augment_seconds, s.images)},
                        {"collate_us", per_image_us(s.collate_seconds, s.images)}});
      continue;
    }
    std::printf(
        "epoch %lld:  %lld batches, %lld images in %.3f s = %.0f images/s; waited %.3f s for "
        "data; %lld skipped\n",
        static_cast<long long>(epoch), static_cast<long long>(batches),
        static_cast<long long>(s.images), wall, rate, s.wait_seconds,
        static_cast<long long>(s.skipped));
    const char* names[4] = {"read", "decode", "augment", "collate"};
    std::printf("  per image (wall time in the workers, summed over them):");
    for (int i = 0; i < 4; ++i) {
      std::printf("  %s %.1f us (%.0f%%)", names[i], per_image_us(stages[i], s.images),
                  stage_total > 0 ? 100.0 * stages[i] / stage_total : 0.0);
    }
    std::printf("\n");
  }
  if (args.json) {
    nlohmann::json out = {{"dataset", dataset->describe()},
                          {"transform", train ? "train" : "eval"},
                          {"input_size", input_size},
                          {"batch", args.batch},
                          {"workers", args.workers},
                          {"prefetch", args.prefetch},
                          {"epochs", epochs}};
    std::cout << out.dump() << "\n";
  }
  return 0;
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto args = std::make_shared<DataArgs>();
  CLI::App* command =
      add_command(app, "data", "time the data loader alone: images/s and the cost of each stage",
                  [args] { return run_data(*args); });
  command->footer(
      "Reads a dataset with the training loader (worker threads, prefetch queue, the train or\n"
      "eval transform) and consumes the batches without a model. Per-stage times are wall time\n"
      "in the workers per image, summed over them: read (file or memory), decode (JPEG/PNG), "
      "augment\n"
      "(crop, flip, jitter, normalise), collate (copy into the batch).\n"
      "Example: densenet data --dataset fashion-mnist --workers 2 --batch 64");
  std::string names;
  for (const auto& name : data::dataset_names()) names += (names.empty() ? "" : "|") + name;
  command->add_option("--dataset", args->dataset.name, names + " (default fashion-mnist)");
  command->add_option("--data,--root", args->dataset.root,
                      "dataset folder (default: fashion-mnist /usr/share/datasets/fashion-mnist, "
                      "others data/NAME)");
  command->add_option("--split", args->split, "train (default) or test");
  command->add_option("--transform", args->transform,
                      "auto (train augmentation on train, eval on test), train or eval");
  command
      ->add_option("--input-size", args->input_size,
                   "side of the images the transform makes (default: the dataset's, 224 for "
                   "imagefolder)")
      ->check(integer_at_least(1));
  command->add_option("--batch", args->batch, "batch size (default 64)")
      ->check(integer_at_least(1));
  command
      ->add_option("--workers", args->workers, "loader threads, 0 = the calling thread (default 2)")
      ->check(integer_at_least(0));
  command->add_option("--prefetch", args->prefetch, "ready batches queued ahead (default 4)")
      ->check(integer_at_least(1));
  command->add_option("--batches", args->batches, "stop each epoch after N batches (default: all)")
      ->check(integer_at_least(0));
  command->add_option("--epochs", args->epochs, "epochs to time (default 1)")
      ->check(integer_at_least(1));
  command->add_option("--seed", args->seed, "shuffling and augmentation seed (default 0)");
  command
      ->add_option("--valid-size", args->valid_size,
                   "hold out N training images (fixed by --seed) and time the rest")
      ->check(integer_at_least(0));
  command
      ->add_option("--color-jitter", args->color_jitter,
                   "imagefolder: ColorJitter brightness = contrast = saturation = X")
      ->check(number_at_least(0));
  command
      ->add_option("--lighting", args->lighting,
                   "imagefolder: AlexNet PCA lighting with this alpha std (e.g. 0.1)")
      ->check(number_at_least(0));
  command->add_option("--synthetic-size", args->dataset.synthetic_size,
                      "synthetic: images (default 1024 train, 256 test)");
  command->add_option("--synthetic-classes", args->dataset.synthetic_classes,
                      "synthetic: classes (default 10)");
  command->add_option("--synthetic-image-size", args->dataset.synthetic_image_size,
                      "synthetic: image side in pixels (default 32)");
  command->add_option("--synthetic-channels", args->dataset.synthetic_channels,
                      "synthetic: 1 or 3 (default 3)");
  command->add_flag("--json", args->json, "one JSON object instead of the text report");
}

}  // namespace densenet::cli
