#include "densenet/io/pretrained.h"

#include "densenet/io/weights.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>
#include <vector>

namespace densenet {
namespace {

// What a DenseNet state dict (torchvision keys) says about its architecture; 0 or empty where
// the state dict does not say.
struct DenseNetShape {
  int64_t stem_kernel = 0;  // features.conv0.weight: (stem_channels, in_channels, k, k)
  int64_t in_channels = 0;
  int64_t stem_channels = 0;
  std::vector<int64_t> blocks;       // dense layers per block
  int64_t growth_rate = 0;           // the first layer's last convolution's output channels
  int64_t bottleneck = 0;            // its 1x1 convolution's output channels; 0: plain layers
  std::vector<int64_t> transitions;  // each transition's output channels
  int64_t classes = 0;               // classifier.weight: (classes, features)
};

int64_t size_of(const StateDict& state, const std::string& key, int64_t dim) {
  const torch::Tensor* tensor = state.find(key);
  return tensor != nullptr && tensor->dim() > dim ? tensor->size(dim) : 0;
}

// Sets values[index - 1] = max(values[index - 1], value), growing `values` as needed.
void raise_at(std::vector<int64_t>& values, int64_t index, int64_t value) {
  if (index < 1) return;
  if (static_cast<int64_t>(values.size()) < index) values.resize(static_cast<size_t>(index), 0);
  values[static_cast<size_t>(index - 1)] = std::max(values[static_cast<size_t>(index - 1)], value);
}

DenseNetShape shape_of(const StateDict& state) {
  static const std::regex layer(R"(^features\.denseblock(\d+)\.denselayer(\d+)\.)");
  static const std::regex transition(R"(^features\.transition(\d+)\.conv\.weight$)");
  DenseNetShape shape;
  shape.stem_channels = size_of(state, "features.conv0.weight", 0);
  shape.in_channels = size_of(state, "features.conv0.weight", 1);
  shape.stem_kernel = size_of(state, "features.conv0.weight", 3);
  for (const auto& item : state) {
    std::smatch match;
    if (std::regex_search(item.key(), match, layer)) {
      raise_at(shape.blocks, std::stoll(match[1].str()), std::stoll(match[2].str()));
    } else if (std::regex_match(item.key(), match, transition) && item.value().dim() > 0) {
      raise_at(shape.transitions, std::stoll(match[1].str()), item.value().size(0));
    }
  }
  const std::string first = "features.denseblock1.denselayer1.";
  if (state.find(first + "conv2.weight") != nullptr) {
    shape.bottleneck = size_of(state, first + "conv1.weight", 0);
    shape.growth_rate = size_of(state, first + "conv2.weight", 0);
  } else {
    shape.growth_rate = size_of(state, first + "conv1.weight", 0);
  }
  shape.classes = size_of(state, "classifier.weight", 0);
  return shape;
}

std::string list_text(const std::vector<int64_t>& values) {
  std::ostringstream out;
  for (size_t i = 0; i < values.size(); ++i) out << (i == 0 ? "" : ",") << values[i];
  return out.str();
}

std::string stem_text(int64_t kernel) {
  return kernel == 7   ? "the imagenet stem (7x7 conv)"
         : kernel == 3 ? "the cifar stem (3x3 conv)"
                       : "a " + std::to_string(kernel) + "x" + std::to_string(kernel) + " stem";
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::string architecture_differences(const StateDict& weights, const StateDict& model,
                                     const std::string& model_name) {
  const DenseNetShape file = shape_of(weights), ours = shape_of(model);
  std::vector<std::string> differences;
  const auto differ = [&](bool different, const std::string& what) {
    if (different) differences.push_back(what);
  };
  const std::string& m = model_name;
  differ(file.stem_kernel != ours.stem_kernel, "the file has " + stem_text(file.stem_kernel) +
                                                   ", " + m + " " + stem_text(ours.stem_kernel) +
                                                   (file.stem_kernel == 7 ? " (add --stem imagenet)"
                                                    : file.stem_kernel == 3 ? " (add --stem cifar)"
                                                                            : ""));
  differ(file.in_channels != ours.in_channels,
         "the file takes " + std::to_string(file.in_channels) + " input channels, " + m + " " +
             std::to_string(ours.in_channels) + " (the dataset's)");
  differ(file.stem_channels != ours.stem_channels,
         "the file's stem has " + std::to_string(file.stem_channels) + " output channels, " + m +
             "'s " + std::to_string(ours.stem_channels) + " (num-init-features)");
  differ(file.blocks != ours.blocks, "the file has dense blocks " + list_text(file.blocks) + ", " +
                                         m + " " + list_text(ours.blocks) + " (block-config)");
  differ(file.growth_rate != ours.growth_rate,
         "the file has growth rate " + std::to_string(file.growth_rate) + ", " + m + " " +
             std::to_string(ours.growth_rate) + " (growth-rate)");
  const auto bottleneck = [](int64_t channels) {
    return channels == 0 ? std::string("no bottleneck")
                         : "a bottleneck of " + std::to_string(channels) + " channels";
  };
  differ(file.bottleneck != ours.bottleneck, "the file's layers have " +
                                                 bottleneck(file.bottleneck) + ", " + m + "'s " +
                                                 bottleneck(ours.bottleneck) + " (bn-size)");
  // Transition widths follow from all of the above; compression is what is left to name.
  differ(differences.empty() && file.transitions != ours.transitions,
         "the file's transitions output " + list_text(file.transitions) + " channels, " + m +
             "'s " + list_text(ours.transitions) + " (compression)");
  std::string joined;
  for (const std::string& text : differences) joined += (joined.empty() ? "" : "; ") + text;
  return joined;
}

std::string PretrainedReport::summary() const {
  std::ostringstream out;
  out << "pretrained: " << model_name << " weights from " << path << "; ";
  if (!classifier_reinitialised) {
    out << "classifier loaded too (" << model_classes << " classes)";
  } else if (file_classes == 0) {
    out << "classifier initialised for " << model_classes << " classes (the file has none)";
  } else {
    out << "classifier re-initialised for " << model_classes << " classes (the file has "
        << file_classes << ")";
  }
  return out.str();
}

PretrainedReport load_pretrained(DenseNet& model, const std::string& path,
                                 const std::string& model_name) {
  std::error_code error;
  TORCH_CHECK_VALUE(std::filesystem::exists(path, error), "pretrained weights '", path,
                    "': no such file");
  const StateDict file = fit_final_norm_name(read_weights(path), *model);
  const StateDict ours = state_dict(*model);
  TORCH_CHECK(file.find("features.conv0.weight") != nullptr, "pretrained weights in '", path,
              "' are not a DenseNet's: there is no features.conv0.weight (its first key is '",
              file.is_empty() ? std::string() : file.begin()->key(), "')");
  const std::string differences = architecture_differences(file, ours, model_name);
  TORCH_CHECK(differences.empty(), "pretrained weights in '", path, "' do not fit ", model_name,
              ": ", differences);

  PretrainedReport report;
  report.path = path;
  report.model_name = model_name;
  report.file_classes = shape_of(file).classes;
  report.model_classes = shape_of(ours).classes;
  report.classifier_reinitialised = report.file_classes != report.model_classes;
  // The fine-tuning recipe (torchvision's and timm's): a head for other classes starts fresh,
  // from the model's own initialisation; everything else must load, strictly.
  StateDict wanted;
  for (const auto& item : file) {
    if (report.classifier_reinitialised && starts_with(item.key(), "classifier.")) continue;
    wanted.insert(item.key(), item.value());
    ++report.tensors_loaded;
  }
  if (report.classifier_reinitialised) {
    for (const auto& item : ours) {
      if (starts_with(item.key(), "classifier.")) wanted.insert(item.key(), item.value().clone());
    }
  }
  try {
    load_state_dict(*model, wanted, /*strict=*/true);
  } catch (const c10::Error& failure) {
    TORCH_CHECK(false, "pretrained weights in '", path, "' do not fit ", model_name, ": ",
                failure.what_without_backtrace());
  }
  return report;
}

}  // namespace densenet
