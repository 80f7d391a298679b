#include "densenet/model/pretrained.h"

#include "densenet/io/weights.h"
#include "densenet/model/load_weights.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <sstream>

namespace densenet {
namespace {

int64_t classifier_rows(const StateDict& state) {
  const torch::Tensor* weight = state.find("classifier.weight");
  return weight != nullptr && weight->dim() == 2 ? weight->size(0) : 0;
}

bool is_classifier(const std::string& key) {
  return key.rfind("classifier.", 0) == 0;
}

}  // namespace

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
                                 const std::string& model_name, const std::string& dataset) {
  std::error_code error;
  TORCH_CHECK_VALUE(std::filesystem::exists(path, error), "pretrained weights '", path,
                    "': no such file");
  const StateDict file = read_weights(path);
  const StateDict ours = state_dict(*model);
  if (file.find("features.conv0.weight") == nullptr) check_wrapper_prefix(*model, file, path);
  TORCH_CHECK(file.find("features.conv0.weight") != nullptr, "pretrained weights in '", path,
              "' are not a DenseNet's: there is no features.conv0.weight (its first key is '",
              file.is_empty() ? std::string() : file.begin()->key(), "')");
  PretrainedReport report;
  report.path = path;
  report.model_name = model_name.empty() ? "the model" : model_name;
  report.file_classes = classifier_rows(file);
  report.model_classes = classifier_rows(ours);
  report.classifier_reinitialised = report.file_classes != report.model_classes;
  // The fine-tuning recipe (torchvision's and timm's): a head for other classes starts fresh,
  // from the model's own initialisation; everything else must load, strictly.
  StateDict wanted;
  for (const auto& item : file) {
    if (report.classifier_reinitialised && is_classifier(item.key())) continue;
    wanted.insert(item.key(), item.value());
    ++report.tensors_loaded;
  }
  if (report.classifier_reinitialised) {
    for (const auto& item : ours) {
      if (is_classifier(item.key())) wanted.insert(item.key(), item.value().clone());
    }
  }
  // The class count is not named in a mismatch: the classifier is replaced (`wanted` holds the
  // model's own), so the file's would be misreported and the model's is no mismatch.
  WeightsSource source{path, model_name, dataset};
  source.fine_tuning = true;
  load_densenet_weights(*model, wanted, source);
  return report;
}

}  // namespace densenet
