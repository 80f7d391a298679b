#include "densenet/io/weights.h"
#include "densenet/model/presets.h"
#include "densenet/model/pretrained.h"

#include <gtest/gtest.h>

#include <string>

#include "support/expect_error.h"
#include "support/tensor_compare.h"

namespace densenet {
namespace {

// Written by tests/reference/make_checkpoints.py (the checkpoints fixture): torchvision models
// with random weights and running statistics, saved as torchvision's published files are
// (legacy format and keys, no num_batches_tracked).
std::string checkpoint(const std::string& name) {
  return std::string(DENSENET_CHECKPOINT_DIR) + "/" + name;
}

DenseNet densenet121(int64_t classes, int64_t in_channels = 3, int64_t input_size = 64) {
  torch::manual_seed(3);
  return DenseNet(preset_options("densenet121")
                      .num_classes(classes)
                      .in_channels(in_channels)
                      .input_size(input_size));
}

StateDict snapshot(const torch::nn::Module& model) {
  StateDict copy;
  for (const auto& item : state_dict(model)) copy.insert(item.key(), item.value().clone());
  return copy;
}

bool is_classifier(const std::string& key) {
  return key.rfind("classifier.", 0) == 0;
}

// Fine-tuning torchvision's densenet121 for 5 classes: every tensor but the classifier is the
// file's, bit for bit (legacy keys renamed, num_batches_tracked added as 0); the classifier is
// the model's own fresh one; the report says so in one line.
TEST(Pretrained, TorchvisionFileWithAnotherClassCount) {
  const std::string path = checkpoint("densenet121_legacy.pth");
  DenseNet model = densenet121(5);
  const StateDict fresh = snapshot(*model);
  const PretrainedReport report = load_pretrained(model, path, "densenet121");
  EXPECT_TRUE(report.classifier_reinitialised);
  EXPECT_EQ(report.file_classes, 1000);
  EXPECT_EQ(report.model_classes, 5);
  EXPECT_EQ(report.summary(), "pretrained: densenet121 weights from " + path +
                                  "; classifier re-initialised for 5 classes (the file has 1000)");
  const StateDict file = read_weights(path);
  const StateDict loaded = state_dict(*model);
  int64_t compared = 0;
  for (const auto& item : loaded) {
    const torch::Tensor& expected =
        is_classifier(item.key()) ? *fresh.find(item.key()) : *file.find(item.key());
    EXPECT_TRUE(testing::tensors_identical(item.key(), item.value(), expected));
    compared += is_classifier(item.key()) ? 0 : 1;
  }
  EXPECT_EQ(compared, report.tensors_loaded);
  EXPECT_EQ(compared + 2, static_cast<int64_t>(file.size()));  // all but classifier.{weight,bias}
}

// The same class count: the classifier comes from the file too. The efficient-pytorch layout
// (wandering007's keys, wrapped as {epoch, state_dict}) loads as torchvision's does.
TEST(Pretrained, SameClassCountAndOtherLayouts) {
  for (const std::string name : {"densenet121_legacy.pth", "efficient_zip.pth"}) {
    SCOPED_TRACE(name);
    DenseNet model = densenet121(1000);
    const PretrainedReport report = load_pretrained(model, checkpoint(name), "densenet121");
    EXPECT_FALSE(report.classifier_reinitialised);
    EXPECT_EQ(report.summary(), "pretrained: densenet121 weights from " + checkpoint(name) +
                                    "; classifier loaded too (1000 classes)");
    const StateDict file = read_weights(checkpoint(name));
    for (const auto& item : state_dict(*model)) {
      EXPECT_TRUE(testing::tensors_identical(item.key(), item.value(), *file.find(item.key())));
    }
  }
}

// Any other difference is the shared short error of weights that do not fit
// (load_densenet_weights): what the file holds, the way out, a line per field; nothing is copied.
TEST(Pretrained, ArchitectureMismatchesAreNamed) {
  const std::string path = checkpoint("densenet121_legacy.pth");
  DenseNet one_channel = densenet121(5, /*in_channels=*/1);
  const StateDict before = snapshot(*one_channel);
  EXPECT_ERROR_CONTAINS(load_pretrained(one_channel, path, "densenet121", "mnist"),
                        "in-channels: 3 in the weights, 1 in the model (mnist's)");
  for (const auto& item : state_dict(*one_channel)) {
    EXPECT_TRUE(testing::tensors_identical(item.key(), item.value(), *before.find(item.key())));
  }
  // The file's classifier (1000 classes) is replaced: no class count is named, neither the
  // file's nor the model's.
  DenseNet cifar_stem = densenet121(5, 3, /*input_size=*/32);
  EXPECT_ERROR_CONTAINS(load_pretrained(cifar_stem, path, "densenet121"),
                        "use --stem imagenet\n  stem: imagenet in the weights, cifar in the model");
  EXPECT_ERROR_CONTAINS(load_pretrained(cifar_stem, checkpoint("densenet169_legacy.pth"), "x"),
                        "holds densenet169, not densenet121 with --stem cifar: use --arch "
                        "densenet169\n");
  DenseNet model = densenet121(5);
  EXPECT_ERROR_CONTAINS(load_pretrained(model, checkpoint("densenet161_legacy.pth"), "densenet121"),
                        "  num-init-features: 96 in the weights, 64 in the model\n  growth-rate: "
                        "48 in the weights, 32 in the model\n  block-config: 6,12,36,24 in the "
                        "weights, 6,12,24,16 in the model");
  EXPECT_ERROR_CONTAINS(load_pretrained(model, checkpoint("none.pth"), "densenet121"),
                        "pretrained weights '" + checkpoint("none.pth") + "': no such file");
  EXPECT_ERROR_CONTAINS(load_pretrained(model, checkpoint("generic_zip.pth"), "densenet121"),
                        "are not a DenseNet's: there is no features.conv0.weight");
}

}  // namespace
}  // namespace densenet
