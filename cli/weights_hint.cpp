#include "weights_hint.h"

#include <sstream>

namespace densenet::cli {

std::string architecture_mismatch_hint(const StateDict& weights, const DenseNetOptions& options) {
  std::ostringstream hint;
  auto add = [&hint](const std::string& text) { hint << (hint.tellp() > 0 ? "; " : "") << text; };
  // features.conv0.weight: (num_init_features, in_channels, kernel, kernel)
  if (const torch::Tensor* stem = weights.find("features.conv0.weight");
      stem != nullptr && stem->dim() == 4) {
    const int64_t kernel = stem->size(3);
    const bool model_cifar = options.uses_small_stem();
    if ((kernel == 7) == model_cifar && (kernel == 7 || kernel == 3)) {
      const std::string theirs = kernel == 7 ? "imagenet" : "cifar";
      add("the weights have the " + theirs + " stem (" + std::to_string(kernel) + "x" +
          std::to_string(kernel) + " conv) but the model the " +
          stem_name(options.effective_stem()) + " stem: add --stem " + theirs);
    }
    if (stem->size(1) != options.in_channels()) {
      add("the weights take " + std::to_string(stem->size(1)) + " input channels, the model " +
          std::to_string(options.in_channels()) + ": add --in-channels " +
          std::to_string(stem->size(1)));
    }
    if (stem->size(0) != options.num_init_features()) {
      add("the weights' stem has " + std::to_string(stem->size(0)) +
          " output channels, the model's " + std::to_string(options.num_init_features()) +
          ": add --num-init-features " + std::to_string(stem->size(0)));
    }
  }
  // classifier.weight: (num_classes, final_channels)
  if (const torch::Tensor* classifier = weights.find("classifier.weight");
      classifier != nullptr && classifier->dim() == 2 &&
      classifier->size(0) != options.num_classes()) {
    add("the weights have " + std::to_string(classifier->size(0)) + " classes, the model " +
        std::to_string(options.num_classes()) + ": add --num-classes " +
        std::to_string(classifier->size(0)));
  }
  return hint.str();
}

}  // namespace densenet::cli
