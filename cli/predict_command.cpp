#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/dataset.h"
#include "densenet/data/image.h"
#include "densenet/data/image_transform.h"
#include "densenet/io/atomic_file.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"
#include "densenet/model/infer_architecture.h"
#include "densenet/model/load_weights.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/config.h"
#include "densenet/train/training_checkpoint.h"

#include <c10/util/Exception.h>

#include <torch/torch.h>
#include <cmath>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <new>
#include <optional>
#include <sstream>

namespace densenet::cli {

namespace {

struct PredictArguments {
  ModelArguments model;
  std::string weights;
  std::vector<std::string> images;
  int64_t topk = 5;
  int64_t resize = 256;
  int64_t crop = 224;
  std::optional<std::string> mean, std;
  std::optional<std::string> labels;
  std::string device = "cpu";
  bool json = false;
  bool logits = false;
  const CLI::Option* resize_option = nullptr;  // set by add_predict_command
  const CLI::Option* crop_option = nullptr;
};

std::vector<double> parse_reals(const std::string& text, const std::string& option) {
  std::vector<double> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    char* end = nullptr;
    const double value = std::strtod(item.c_str(), &end);
    TORCH_CHECK(!item.empty() && end != nullptr && *end == '\0', "--", option,
                " expects a comma-separated list of numbers, got '", text, "'");
    values.push_back(value);
  }
  TORCH_CHECK(!values.empty(), "--", option, " expects a comma-separated list of numbers");
  return values;
}

// The class names of a JSON labels file: a list of strings, or an object from class index to a
// name or to ImageNet's imagenet_class_index.json pair [wordnet id, name] (the name is taken).
// Anything else is one error naming the file.
std::vector<std::string> json_labels(const std::string& text, const std::string& path) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    TORCH_CHECK(false, "labels file '", path, "' starts with '", text[text.find_first_of("[{")],
                "' but is not valid JSON: ", error.what());
  }
  const char* expected =
      "a JSON labels file must be a list of strings or an object {\"0\": name or [id, name], "
      "...}";
  std::vector<std::string> labels;
  if (json.is_array()) {
    for (const auto& item : json) {
      TORCH_CHECK(item.is_string(), "labels file '", path, "': ", expected,
                  ", found a list with a ", item.type_name());
      labels.push_back(item.get<std::string>());
    }
    return labels;
  }
  labels.resize(json.size());
  for (const auto& [key, value] : json.items()) {
    size_t used = 0;
    long long index = -1;
    try {
      index = std::stoll(key, &used);
    } catch (const std::exception&) {
    }
    TORCH_CHECK(used == key.size() && index >= 0 && index < static_cast<long long>(json.size()),
                "labels file '", path, "': ", expected, "; key '", key,
                "' is not a class index from 0 to ", json.size() - 1);
    const bool pair = value.is_array() && value.size() == 2 && value[1].is_string();
    TORCH_CHECK(value.is_string() || pair, "labels file '", path, "': ", expected, "; class ", key,
                " has a ", value.type_name());
    labels[static_cast<size_t>(index)] =
        pair ? value[1].get<std::string>() : value.get<std::string>();
  }
  return labels;
}

// Text lines (line i names class i), or JSON when the file starts with '[' or '{' (json_labels);
// read_file reports a directory or an unreadable file with its reason.
std::vector<std::string> read_labels(const std::string& path, int64_t classes) {
  const std::string text = read_file(path);
  std::vector<std::string> labels;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    labels = json_labels(text, path);
  } else {
    std::istringstream stream(text);
    std::string line;
    while (std::getline(stream, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      labels.push_back(line);
    }
  }
  TORCH_CHECK(static_cast<int64_t>(labels.size()) >= classes, "labels file '", path, "' names ",
              labels.size(), " classes but the model has ", classes);
  return labels;
}

// The network to run: its options, weights and, from a training checkpoint, its class names
// and the data it was trained on (whose size and normalisation the images get).
struct PredictModel {
  DenseNetOptions options;
  StateDict weights;
  std::vector<std::string> classes;  // a training checkpoint's, label order
  std::string arch;                  // the preset it is built from
  std::string dataset;               // a training checkpoint's; "" for plain weights
  int64_t input_size = 0;            // the side it runs at (training checkpoints)
  int64_t trained_size = 0;          // the side it was trained at (training checkpoints)
};

// The model of a training checkpoint, as eval takes it: --arch and the architecture overrides
// must agree with it (a usage error otherwise), --in-channels, --num-classes, --stem and
// --input-size apply.
PredictModel checkpoint_model(const ModelArguments& args, train::TrainingCheckpoint checkpoint,
                              const std::string& path) {
  train::TrainConfig requested;
  std::vector<std::string> given;
  if (args.arch_given()) {
    train::set_config_value(requested, "arch", args.arch);
    given.emplace_back("arch");
  }
  for (const auto& [name, text] : args.overrides) {
    if (name == "in-channels" || name == "num-classes") continue;  // no config keys: the data's
    train::set_config_value(requested, name, text);
    given.push_back(name);
  }
  train::check_checkpoint_architecture(checkpoint.config, requested, given, path);
  PredictModel model;
  train::TrainConfig& config = checkpoint.config;
  const auto given_integer = [&](const char* name, int64_t otherwise) {
    const auto it = args.overrides.find(name);
    return it == args.overrides.end() ? otherwise : std::stoll(it->second);
  };
  model.trained_size = train::trained_input_size(config);
  model.input_size = given_integer("input-size", model.trained_size);
  // Channels and classes were the dataset's: the weights say them.
  int64_t channels = 0, classes = 0;
  try {
    const DenseNetOptions inferred = infer_architecture(checkpoint.weights);
    channels = inferred.in_channels();
    classes = inferred.num_classes();
  } catch (const c10::Error&) {  // the load below names what does not fit
  }
  model.options = train::model_options(config, given_integer("in-channels", channels),
                                       given_integer("num-classes", classes), model.input_size);
  model.options.memory(args.memory ? parse_memory_mode(*args.memory) : MemoryMode::kNaive);
  model.weights = std::move(checkpoint.weights);
  model.classes = std::move(checkpoint.classes);
  model.arch = config.arch;
  model.dataset = config.dataset;
  return model;
}

// The network `path` holds: a training checkpoint's own, or the --arch given for plain weights.
PredictModel load_model(const ModelArguments& args, const std::string& path) {
  const WeightsFile file = read_weights_file(path);
  if (auto checkpoint = train::read_training_checkpoint(file.root, path)) {
    return checkpoint_model(args, std::move(*checkpoint), path);
  }
  if (!args.arch_given()) {
    throw UsageError("--arch is required: '" + path +
                     "' holds plain weights, not a training checkpoint that names its "
                     "architecture");
  }
  PredictModel model;
  model.options = model_options_from(args);
  model.arch = args.arch;
  model.weights = to_torchvision_keys(tensors_of(locate_state_dict(file.root, path).dict, path));
  return model;
}

// --mean and --std as numbers, checked before any file is read; unset when not given.
struct Normalize {
  std::optional<std::vector<double>> mean, std;
};

Normalize parse_normalize(const PredictArguments& args) {
  Normalize out;
  try {
    if (args.mean) out.mean = parse_reals(*args.mean, "mean");
    if (args.std) out.std = parse_reals(*args.std, "std");
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  for (const double s : out.std.value_or(std::vector<double>{})) {
    if (!(s > 0) || !std::isfinite(s)) throw UsageError("--std values must be positive and finite");
  }
  for (const double m : out.mean.value_or(std::vector<double>{})) {
    if (!std::isfinite(m)) throw UsageError("--mean values must be finite numbers");
  }
  return out;
}

// torchvision's ImageNet evaluation transform, or for a training checkpoint its data's (the
// side it was trained at, its normalisation); every option given overrides.
ImageTransformOptions image_transform(const PredictArguments& args, const Normalize& given,
                                      const PredictModel& model) {
  const int64_t channels = model.options.in_channels();
  if (channels != 1 && channels != 3) {
    throw UsageError(
        "predict reads RGB or grey images, so the model needs --in-channels 1 or 3, not " +
        std::to_string(channels));
  }
  ImageTransformOptions transform;
  transform.resize = args.resize;
  transform.crop = args.crop;
  if (!model.dataset.empty()) {
    // Folders of photos were resized and cropped as torchvision's ImageNet recipe; MNIST and
    // CIFAR images have the trained side (a larger image is resized to it first).
    const bool photos = model.dataset == "imagefolder";
    if (args.resize_option->count() == 0) {
      transform.resize = photos ? model.input_size * 256 / 224 : model.input_size;
    }
    if (args.crop_option->count() == 0) transform.crop = model.input_size;
    const data::Normalization norm = data::default_normalization(model.dataset);
    // One value stands for every channel.
    transform.mean = std::vector<double>(static_cast<size_t>(channels), norm.mean[0]);
    transform.std = std::vector<double>(static_cast<size_t>(channels), norm.std[0]);
    if (static_cast<int64_t>(norm.mean.size()) == channels) transform.mean = norm.mean;
    if (static_cast<int64_t>(norm.std.size()) == channels) transform.std = norm.std;
  } else if (channels == 1 && (!given.mean || !given.std)) {
    throw UsageError(
        "a 1-channel model needs --mean and --std with one value each (ImageNet's defaults are "
        "for RGB)");
  }
  if (given.mean) transform.mean = *given.mean;
  if (given.std) transform.std = *given.std;
  if (static_cast<int64_t>(transform.mean.size()) != channels ||
      static_cast<int64_t>(transform.std.size()) != channels) {
    throw UsageError("--mean and --std need " + std::to_string(channels) +
                     " values each (one per input channel), got " +
                     std::to_string(transform.mean.size()) + " and " +
                     std::to_string(transform.std.size()));
  }
  return transform;
}

// (1, C, crop, crop) on `device`; c10::Error naming the file when it cannot be read.
torch::Tensor read_input(const std::string& file, const ImageTransformOptions& transform,
                         int64_t channels, const torch::Device& device) {
  Image image = read_image(file);
  if (channels == 1) image = to_luma(image);
  try {
    return preprocess_image(image, transform).unsqueeze(0).to(device);
  } catch (const std::bad_alloc&) {
    TORCH_CHECK(false, "'", file, "': out of memory resizing it to ", transform.resize,
                " pixels on the shorter side (",
                format_bytes(static_cast<int64_t>(
                    4.0 * channels * transform.resize * transform.resize *
                    std::max(image.width, image.height) /
                    std::max<int64_t>(1, std::min(image.width, image.height)))),
                " as float32); use a smaller --resize");
  }
}

// One image's result: the top-k classes with their softmax probabilities and, with --logits,
// every class's raw logit; as a JSON line or as text.
void print_prediction(const std::string& file, const torch::Tensor& logits,
                      const std::vector<std::string>& labels, const PredictArguments& args) {
  const torch::Tensor probabilities = torch::softmax(logits, 0);  // (classes)
  const auto best = probabilities.topk(std::min(args.topk, probabilities.size(0)));
  const torch::Tensor values = std::get<0>(best);
  const torch::Tensor indices = std::get<1>(best);
  nlohmann::ordered_json top = nlohmann::ordered_json::array();
  for (int64_t i = 0; i < values.size(0); ++i) {
    const int64_t index = indices[i].item<int64_t>();
    nlohmann::ordered_json entry = {{"index", index}, {"prob", values[i].item<double>()}};
    if (!labels.empty()) entry["label"] = labels[index];
    top.push_back(entry);
  }
  const torch::Tensor raw = logits.to(torch::kFloat32).contiguous();
  const std::vector<float> all(raw.data_ptr<float>(), raw.data_ptr<float>() + raw.numel());
  if (args.json) {
    nlohmann::ordered_json line = {{"file", file}, {"topk", top}};
    if (args.logits) line["logits"] = all;
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return;
  }
  std::printf("%s\n", file.c_str());
  for (size_t i = 0; i < top.size(); ++i) {
    const std::string label =
        top[i].contains("label") ? "  " + top[i]["label"].get<std::string>() : "";
    std::printf("  %zu. class %-5lld %.4f%s\n", i + 1,
                static_cast<long long>(top[i]["index"].get<int64_t>()),
                top[i]["prob"].get<double>(), label.c_str());
  }
  if (args.logits) {
    // %.9g: every float32 prints as the shortest text that reads back to the same float.
    std::printf("  logits:");
    for (const float value : all) std::printf(" %.9g", static_cast<double>(value));
    std::printf("\n");
  }
  std::fflush(stdout);
}

int run_predict(const PredictArguments& args) {
  // Mistakes in the flags alone are found before any file is read.
  const torch::Device device = device_from(args.device);
  const Normalize normalize = parse_normalize(args);
  const PredictModel loaded = load_model(args.model, args.weights);
  const DenseNetOptions& options = loaded.options;
  const ImageTransformOptions transform = image_transform(args, normalize, loaded);
  if (loaded.trained_size > 0 && transform.crop > 0 && transform.crop != loaded.trained_size) {
    // torchvision's users do evaluate at other sizes: a note, not an error.
    std::fprintf(
        stderr, "note: the images are cropped to %lld px, but the model was trained at %lld px\n",
        static_cast<long long>(transform.crop), static_cast<long long>(loaded.trained_size));
  }
  std::vector<std::string> labels;
  if (args.labels) {
    labels = read_labels(*args.labels, options.num_classes());
  } else if (static_cast<int64_t>(loaded.classes.size()) == options.num_classes()) {
    labels = loaded.classes;
  }

  DenseNet model(options);
  load_densenet_weights(*model, loaded.weights, {args.weights, loaded.arch, ""});
  model->to(device);
  model->eval();
  torch::NoGradGuard no_grad;

  int failures = 0;
  for (const std::string& file : args.images) {
    torch::Tensor input;  // (1, C, crop, crop)
    try {
      input = read_input(file, transform, options.in_channels(), device);
    } catch (const c10::Error& error) {
      std::fprintf(stderr, "densenet predict: error: %s\n", error.what_without_backtrace());
      ++failures;
      continue;
    }
    print_prediction(file, model->forward(input)[0].cpu(), labels, args);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArguments>();
  CLI::App* command = add_command(app, "predict", "classify JPEG/PNG images with given weights",
                                  [args] { return run_predict(*args); });
  command->footer(
      std::string("Classifies JPEG and PNG images. Each image is decoded to RGB (or luma for a\n"
                  "1-channel model, as PIL's convert('L')), resized so that its shorter side is\n"
                  "--resize (bilinear, antialiased, as PIL), center-cropped to --crop, scaled to\n"
                  "[0, 1] and normalised: torchvision's ImageNet evaluation transform by default.\n"
                  "Prints the top-k classes and their softmax probabilities (with --logits, every\n"
                  "class's logit too). A training checkpoint of 'densenet train' brings its\n"
                  "architecture, class names and data transform (its input size and\n"
                  "normalisation); plain weights need --arch. An image that cannot be read is\n"
                  "reported and skipped; the exit code is then 1.") +
      "\n\n" + wrapped(std::string(image_format_limits()) + " " + checkpoint_format_limits()));
  ModelOptionSettings model;
  model.default_arch = "";  // the weights decide: no default would be right
  add_model_options(*command, args->model, model);
  // Required unless a training checkpoint names it: run_predict checks once the file is read.
  CLI::Option* arch = command->get_option("--arch");
  std::string help = arch->get_description();
  help = help.substr(0, help.rfind(" (")) +
         " (required: no default, unless --weights is a training checkpoint)";
  arch->description(help);
  command
      ->add_option("--weights", args->weights,
                   "weights: .pth (torchvision, legacy or zip), .safetensors, or a training "
                   "checkpoint (its architecture, classes and input transform are used)")
      ->type_name("FILE")
      ->required();
  command->add_option("IMAGE", args->images, "JPEG or PNG files")->required();
  command->add_option("--topk", args->topk, "classes to print per image")
      ->type_name("K")
      ->capture_default_str()
      ->check(integer_in(1, int64_t{1} << 24));
  // 16384 pixels (a 4:3 photo resized to it holds 4 GiB as float32) is far beyond any
  // classifier's input; larger values ran out of memory (std::bad_alloc) rather than failing
  // with a message.
  args->resize_option =
      command
          ->add_option("--resize", args->resize,
                       "resize the shorter side to N, bilinear (0 = skip; a training "
                       "checkpoint's default: its input size)")
          ->type_name("N")
          ->capture_default_str()
          ->check(integer_in(0, int64_t{1} << 14));
  args->crop_option = command
                          ->add_option("--crop", args->crop,
                                       "center crop N x N (0 = skip; a training checkpoint's "
                                       "default: its input size)")
                          ->type_name("N")
                          ->capture_default_str()
                          ->check(integer_in(0, int64_t{1} << 14));
  command
      ->add_option("--mean", args->mean,
                   "per-channel mean (default ImageNet's 0.485,0.456,0.406, or a training "
                   "checkpoint's dataset's)")
      ->type_name("LIST");
  command
      ->add_option("--std", args->std,
                   "per-channel std (default ImageNet's 0.229,0.224,0.225, or a training "
                   "checkpoint's dataset's)")
      ->type_name("LIST");
  command
      ->add_option("--labels", args->labels,
                   "class names: text with one per line (line i names class i), or JSON (a list, "
                   "or {\"0\": name or [id, name], ...} as imagenet_class_index.json) (default: "
                   "a training checkpoint's classes)")
      ->type_name("FILE");
  command->add_option("--device", args->device, "cpu, cuda or cuda:N")
      ->type_name("DEV")
      ->capture_default_str();
  command->add_flag("--json", args->json,
                    "print one JSON object per image: {file, topk: [{index, prob, label}]} (and "
                    "logits with --logits)");
  command->add_flag("--logits", args->logits,
                    "also print every class's raw logit (before softmax), as float32 prints "
                    "exactly: a line 'logits: ...' per image, or \"logits\": [...] in --json");
}

}  // namespace densenet::cli
