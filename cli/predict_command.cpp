#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"
#include "weights_hint.h"

#include "densenet/data/image.h"
#include "densenet/data/image_transform.h"
#include "densenet/io/atomic_file.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"
#include "densenet/tools/memory_tracker.h"

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

// Text lines (line i names class i) or a JSON list of strings (such as torchvision's
// imagenet_class_index-derived lists); read_file reports a directory or an unreadable file with
// its reason.
std::vector<std::string> read_labels(const std::string& path, int64_t classes) {
  const std::string text = read_file(path);
  std::vector<std::string> labels;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& error) {
      TORCH_CHECK(false, "labels file '", path,
                  "' starts with '[' but is not valid JSON: ", error.what());
    }
    for (const auto& item : list) {
      TORCH_CHECK(item.is_string(), "labels file '", path,
                  "': a JSON labels file must be a list of strings, found ", item.type_name());
      labels.push_back(item.get<std::string>());
    }
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

// Loads the weights; a mismatch that the stem or a channel count explains says so.
void load_checked(DenseNet& model, const std::string& path, const DenseNetOptions& options) {
  try {
    load_weights(*model, path);
  } catch (const c10::Error& error) {
    std::string hint;
    try {
      hint = architecture_mismatch_hint(read_weights(path), options);
    } catch (const c10::Error&) {  // unreadable: the first error says why
    }
    TORCH_CHECK(false, error.what_without_backtrace(), hint.empty() ? "" : " (" + hint + ")");
  }
}

int run_predict(const PredictArguments& args) {
  const DenseNetOptions options = model_options_from(args.model);
  const int64_t channels = options.in_channels();
  if (channels != 1 && channels != 3) {
    throw UsageError(
        "predict reads RGB or grey images, so the model needs --in-channels 1 or 3, "
        "not " +
        std::to_string(channels));
  }
  ImageTransformOptions transform;
  transform.resize = args.resize;
  transform.crop = args.crop;
  if (channels == 1 && (!args.mean || !args.std)) {
    throw UsageError(
        "a 1-channel model needs --mean and --std with one value each (ImageNet's defaults are "
        "for RGB)");
  }
  try {
    if (args.mean) transform.mean = parse_reals(*args.mean, "mean");
    if (args.std) transform.std = parse_reals(*args.std, "std");
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  if (static_cast<int64_t>(transform.mean.size()) != channels ||
      static_cast<int64_t>(transform.std.size()) != channels) {
    throw UsageError("--mean and --std need " + std::to_string(channels) +
                     " values each (one per input channel), got " +
                     std::to_string(transform.mean.size()) + " and " +
                     std::to_string(transform.std.size()));
  }
  for (const double s : transform.std) {
    if (!(s > 0) || !std::isfinite(s)) throw UsageError("--std values must be positive and finite");
  }
  for (const double m : transform.mean) {
    if (!std::isfinite(m)) throw UsageError("--mean values must be finite numbers");
  }
  const torch::Device device = device_from(args.device);
  std::vector<std::string> labels;
  if (args.labels) labels = read_labels(*args.labels, options.num_classes());

  DenseNet model(options);
  load_checked(model, args.weights, options);
  model->to(device);
  model->eval();
  torch::NoGradGuard no_grad;

  int failures = 0;
  for (const std::string& file : args.images) {
    torch::Tensor input;  // (1, C, crop, crop)
    try {
      Image image = read_image(file);
      if (channels == 1) image = to_luma(image);
      try {
        input = preprocess_image(image, transform).unsqueeze(0).to(device);
      } catch (const std::bad_alloc&) {
        TORCH_CHECK(false, "'", file, "': out of memory resizing it to ", transform.resize,
                    " pixels on the shorter side (",
                    format_bytes(static_cast<int64_t>(
                        4.0 * channels * transform.resize * transform.resize *
                        std::max(image.width, image.height) /
                        std::max<int64_t>(1, std::min(image.width, image.height)))),
                    " as float32); use a smaller --resize");
      }
    } catch (const c10::Error& error) {
      std::fprintf(stderr, "densenet predict: error: %s\n", error.what_without_backtrace());
      ++failures;
      continue;
    }
    const torch::Tensor probabilities = torch::softmax(model->forward(input), 1)[0].cpu();
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
    if (args.json) {
      const nlohmann::ordered_json line = {{"file", file}, {"topk", top}};
      std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
      continue;
    }
    std::printf("%s\n", file.c_str());
    for (size_t i = 0; i < top.size(); ++i) {
      const std::string label =
          top[i].contains("label") ? "  " + top[i]["label"].get<std::string>() : "";
      std::printf("  %zu. class %-5lld %.4f%s\n", i + 1,
                  static_cast<long long>(top[i]["index"].get<int64_t>()),
                  top[i]["prob"].get<double>(), label.c_str());
    }
    std::fflush(stdout);
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
                  "Prints the top-k classes and their softmax probabilities. An image that cannot\n"
                  "be read is reported and skipped; the exit code is then 1.") +
      "\n\n" + wrapped(std::string(image_format_limits()) + " " + checkpoint_format_limits()));
  ModelOptionSettings model;
  model.default_arch = "";
  model.require_arch = true;  // the weights decide: no default would be right
  add_model_options(*command, args->model, model);
  command
      ->add_option("--weights", args->weights,
                   "weights: .pth (torchvision, legacy or zip) or .safetensors")
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
  command->add_option("--resize", args->resize, "resize the shorter side to N, bilinear (0 = skip)")
      ->type_name("N")
      ->capture_default_str()
      ->check(integer_in(0, int64_t{1} << 14));
  command->add_option("--crop", args->crop, "center crop N x N (0 = skip)")
      ->type_name("N")
      ->capture_default_str()
      ->check(integer_in(0, int64_t{1} << 14));
  command
      ->add_option("--mean", args->mean, "per-channel mean (default ImageNet's 0.485,0.456,0.406)")
      ->type_name("LIST");
  command->add_option("--std", args->std, "per-channel std (default ImageNet's 0.229,0.224,0.225)")
      ->type_name("LIST");
  command
      ->add_option("--labels", args->labels,
                   "class names: text with one per line (line i names class i), or a JSON list")
      ->type_name("FILE");
  command->add_option("--device", args->device, "cpu or cuda")
      ->type_name("DEV")
      ->capture_default_str();
  command->add_flag("--json", args->json,
                    "print one JSON object per image: {file, topk: [{index, prob, label}]}");
}

}  // namespace densenet::cli
