#include "legacy_command.h"

#include "arguments.h"
#include "model_arguments.h"

#include "densenet/data/image.h"
#include "densenet/data/image_transform.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace densenet::cli {

namespace {

std::vector<OptionSpec> predict_specs() {
  std::vector<OptionSpec> specs = model_option_specs();
  specs.push_back(
      {"weights", "FILE", "weights: .pth (torchvision, legacy or zip) or .safetensors"});
  specs.push_back({"topk", "K", "classes to print per image (default 5)"});
  specs.push_back(
      {"resize", "N", "resize the shorter side to N, bilinear (default 256; 0 = skip)"});
  specs.push_back({"crop", "N", "center crop N x N (default 224; 0 = skip)"});
  specs.push_back({"mean", "LIST", "per-channel mean (default ImageNet's 0.485,0.456,0.406)"});
  specs.push_back({"std", "LIST", "per-channel std (default ImageNet's 0.229,0.224,0.225)"});
  specs.push_back({"labels", "FILE", "class names, one per line, line i naming class i"});
  specs.push_back({"device", "DEV", "cpu (default) or cuda"});
  specs.push_back({"json", "", "print one JSON object per image: {file, topk: [{index, prob}]}"});
  specs.push_back({"help", "", "show this help"});
  return specs;
}

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

std::vector<std::string> read_labels(const std::string& path, int64_t classes) {
  std::ifstream stream(path);
  TORCH_CHECK(stream.good(), "cannot read labels file '", path, "'");
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  TORCH_CHECK(static_cast<int64_t>(labels.size()) >= classes, "labels file '", path, "' names ",
              labels.size(), " classes but the model has ", classes);
  return labels;
}

}  // namespace

int predict_command(const std::vector<std::string>& raw_args) {
  const std::vector<OptionSpec> specs = predict_specs();
  Arguments args(raw_args, specs);
  if (args.flag("help")) {
    std::cout
        << "usage: densenet predict --arch NAME --weights FILE IMAGE... [--topk 5] [--json]\n"
           "                        [--resize 256] [--crop 224] [--mean a,b,c] [--std a,b,c]\n"
           "                        [--labels FILE] [--device cpu|cuda] [model overrides]\n\n"
           "Classifies JPEG and PNG images. Each image is decoded to RGB (or luma for a\n"
           "1-channel model, as PIL's convert('L')), resized so that its shorter side is\n"
           "--resize (bilinear, antialiased, as PIL), center-cropped to --crop, scaled to\n"
           "[0, 1] and normalised: torchvision's ImageNet evaluation transform by default.\n"
           "Prints the top-k classes and their softmax probabilities. An image that cannot\n"
           "be read is reported and skipped; the exit code is then 1.\n\n"
        << format_options(specs);
    return 0;
  }
  if (!args.has("arch")) throw UsageError("--arch NAME is required (the weights' architecture)");
  const auto weights = args.value("weights");
  if (!weights) throw UsageError("--weights FILE is required");
  if (args.positionals().empty()) throw UsageError("no IMAGE given");
  const DenseNetOptions options = model_options_from(args);
  const int64_t channels = options.in_channels();
  TORCH_CHECK(channels == 1 || channels == 3, "predict reads RGB or grey images, so the model ",
              "needs 1 or 3 input channels, not ", channels);
  ImageTransformOptions transform;
  if (auto v = args.integer("resize")) transform.resize = *v;
  if (auto v = args.integer("crop")) transform.crop = *v;
  TORCH_CHECK(transform.resize >= 0 && transform.crop >= 0,
              "--resize and --crop must be >= 0 (0 skips the step)");
  if (channels == 1 && (!args.has("mean") || !args.has("std"))) {
    TORCH_CHECK(false, "a 1-channel model needs --mean and --std with one value each ",
                "(ImageNet's defaults are for RGB)");
  }
  if (auto v = args.value("mean")) transform.mean = parse_reals(*v, "mean");
  if (auto v = args.value("std")) transform.std = parse_reals(*v, "std");
  TORCH_CHECK(static_cast<int64_t>(transform.mean.size()) == channels &&
                  static_cast<int64_t>(transform.std.size()) == channels,
              "--mean and --std need ", channels, " values each (one per input channel), got ",
              transform.mean.size(), " and ", transform.std.size());
  for (const double s : transform.std) TORCH_CHECK(s > 0, "--std values must be positive");
  const int64_t topk = args.integer("topk").value_or(5);
  TORCH_CHECK(topk >= 1, "--topk must be >= 1, got ", topk);
  const torch::Device device = device_from(args);
  std::vector<std::string> labels;
  if (auto path = args.value("labels")) labels = read_labels(*path, options.num_classes());

  DenseNet model(options);
  load_weights(*model, *weights);
  model->to(device);
  model->eval();
  torch::NoGradGuard no_grad;

  int failures = 0;
  for (const std::string& file : args.positionals()) {
    torch::Tensor input;
    try {
      Image image = read_image(file);
      if (channels == 1) image = to_luma(image);
      input = preprocess_image(image, transform).unsqueeze(0).to(device);
    } catch (const c10::Error& error) {
      std::fprintf(stderr, "densenet predict: error: %s\n", error.what_without_backtrace());
      ++failures;
      continue;
    }
    const torch::Tensor probabilities = torch::softmax(model->forward(input), 1)[0].cpu();
    const auto best = probabilities.topk(std::min(topk, probabilities.size(0)));
    const torch::Tensor values = std::get<0>(best);
    const torch::Tensor indices = std::get<1>(best);
    nlohmann::ordered_json top = nlohmann::ordered_json::array();
    for (int64_t i = 0; i < values.size(0); ++i) {
      const int64_t index = indices[i].item<int64_t>();
      nlohmann::ordered_json entry = {{"index", index}, {"prob", values[i].item<double>()}};
      if (!labels.empty()) entry["label"] = labels[index];
      top.push_back(entry);
    }
    if (args.flag("json")) {
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

}  // namespace densenet::cli
