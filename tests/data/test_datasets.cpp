// Dataset readers on files that tests/reference/make_data.py writes in every format: the
// pixels and labels must be what was written (and, for image folders, what torchvision's
// ImageFolder + PIL give, in its order), and each kind of bad input must be one clear error.

#include "data/data_dir.h"
#include "densenet/data/dataset.h"
#include "densenet/io/safetensors.h"
#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace densenet::data {
namespace {

using densenet::testing::data_dir;

const TensorFile& expected() {
  static const TensorFile file = read_safetensors(data_dir() + "/expected.safetensors");
  return file;
}

torch::Tensor want(const std::string& name) {
  const auto& tensors = expected().tensors;
  const auto found = tensors.find(name);
  TORCH_CHECK(found != nullptr, "expected.safetensors lacks ", name);
  return *found;
}

std::shared_ptr<Dataset> open(const std::string& name, const std::string& folder, Split split) {
  DatasetOptions options;
  options.name = name;
  options.root = data_dir() + "/" + folder;
  return open_dataset(options, split);
}

void expect_all(const std::string& tag, const Dataset& dataset, const torch::Tensor& images,
                const torch::Tensor& labels) {
  ASSERT_EQ(dataset.size(), images.size(0)) << tag;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const RawSample sample = dataset.get(i);
    ASSERT_TRUE(densenet::testing::tensors_identical(tag + " image " + std::to_string(i),
                                                     sample.image, images[i]));
    ASSERT_EQ(sample.label, labels[i].item<int64_t>()) << tag << " label " << i;
  }
}

struct FormatCase {
  std::string dataset, folder, key;
  Split split;
  int64_t channels;
};

class Formats : public ::testing::TestWithParam<FormatCase> {};

TEST_P(Formats, ReadsWhatWasWritten) {
  const FormatCase& c = GetParam();
  const auto dataset = open(c.dataset, c.folder, c.split);
  EXPECT_EQ(dataset->channels(), c.channels);
  expect_all(c.key, *dataset, want(c.key + "_images"), want(c.key + "_labels"));
  EXPECT_NE(dataset->describe().find(std::to_string(dataset->size()) + " images"),
            std::string::npos)
      << dataset->describe();
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, Formats,
    ::testing::Values(FormatCase{"fashion-mnist", "fashion", "fashion_train", Split::Train, 1},
                      FormatCase{"fashion-mnist", "fashion", "fashion_t10k", Split::Test, 1},
                      FormatCase{"mnist", "mnist", "mnist_train", Split::Train, 1},
                      FormatCase{"mnist", "mnist", "mnist_t10k", Split::Test, 1},
                      FormatCase{"cifar10", "cifar10", "cifar10_train", Split::Train, 3},
                      FormatCase{"cifar10", "cifar10", "cifar10_test", Split::Test, 3},
                      FormatCase{"cifar100", "cifar100", "cifar100_train", Split::Train, 3},
                      FormatCase{"cifar100", "cifar100", "cifar100_test", Split::Test, 3}));

TEST(Datasets, ClassNames) {
  EXPECT_EQ(open("fashion-mnist", "fashion", Split::Train)->classes().at(9), "Ankle boot");
  EXPECT_EQ(open("mnist", "mnist", Split::Train)->classes().at(3), "3 - three");
  EXPECT_EQ(open("cifar10", "cifar10", Split::Test)->classes().at(1), "automobile");
  const auto hundred = open("cifar100", "cifar100", Split::Train);
  ASSERT_EQ(hundred->classes().size(), 100u);
  EXPECT_EQ(hundred->classes().at(42), "fine42");
}

TEST(Datasets, ImageFolderMatchesTorchvisionOrderAndPixels) {
  for (const auto& [split, folder] : {std::pair{Split::Train, std::string("train")},
                                      std::pair{Split::Test, std::string("val")}}) {
    const auto dataset = open("imagefolder", "folder", split);
    // torchvision sorts class names by code point: "Zebra" before "apple".
    EXPECT_EQ(dataset->classes(), (std::vector<std::string>{"Zebra", "apple", "bee"}));
    const torch::Tensor labels = want("folder_" + folder + "_labels");
    ASSERT_EQ(dataset->size(), labels.size(0));
    const int64_t corrupt = want("folder_" + folder + "_corrupt_index").item<int64_t>();
    for (int64_t i = 0; i < dataset->size(); ++i) {
      if (i == corrupt) {
        EXPECT_THROW(dataset->get(i), DataError);
        try {
          dataset->get(i);
        } catch (const DataError& error) {
          EXPECT_NE(error.path().find("corrupt.jpg"), std::string::npos) << error.path();
        }
        continue;
      }
      const RawSample sample = dataset->get(i);
      EXPECT_EQ(sample.label, labels[i].item<int64_t>()) << folder << " sample " << i;
      EXPECT_TRUE(densenet::testing::tensors_identical(
          folder + " image " + std::to_string(i), sample.image,
          want("folder_" + folder + "_image" + std::to_string(i))));
    }
  }
}

TEST(Datasets, ClassListIsWrittenOnePerLine) {
  const auto dataset = open("imagefolder", "folder", Split::Train);
  const std::string path = data_dir() + "/classes_written.txt";
  write_class_list(*dataset, path);
  std::ifstream written(path), reference(data_dir() + "/folder/train_classes.txt");
  std::stringstream a, b;
  a << written.rdbuf();
  b << reference.rdbuf();
  EXPECT_EQ(a.str(), b.str());
}

TEST(Datasets, SyntheticIsDeterministicAndLearnable) {
  DatasetOptions options;
  options.name = "synthetic";
  options.synthetic_size = 40;
  options.synthetic_classes = 4;
  options.synthetic_image_size = 16;
  options.synthetic_channels = 3;
  const auto a = open_dataset(options, Split::Train);
  const auto b = open_dataset(options, Split::Train);
  const auto test = open_dataset(options, Split::Test);
  ASSERT_EQ(a->size(), 40);
  EXPECT_TRUE(densenet::testing::tensors_identical("same seed", a->get(7).image, b->get(7).image));
  EXPECT_FALSE(torch::equal(a->get(7).image, test->get(7).image)) << "test reuses train images";
  // Learnable: the per-class mean colour separates the classes (nearest class mean, on
  // images 0..39, gets every label right).
  std::vector<torch::Tensor> means;
  for (int64_t c = 0; c < 4; ++c) {
    means.push_back(a->get(c).image.to(torch::kFloat32).mean(std::vector<int64_t>{0, 1}));
  }
  for (int64_t i = 0; i < 40; ++i) {
    const RawSample s = test->get(i);
    const torch::Tensor colour = s.image.to(torch::kFloat32).mean(std::vector<int64_t>{0, 1});
    int64_t best = 0;
    for (int64_t c = 1; c < 4; ++c) {
      if ((colour - means[c]).norm().item<double>() < (colour - means[best]).norm().item<double>())
        best = c;
    }
    EXPECT_EQ(best, s.label) << "test image " << i;
  }
  options.synthetic_channels = 2;
  EXPECT_ERROR_CONTAINS(open_dataset(options, Split::Train), "channels must be 1 or 3, got 2");
}

TEST(Datasets, ValidationSplitIsFixedBySeedAndDisjoint) {
  DatasetOptions options;
  options.name = "synthetic";
  options.synthetic_size = 50;
  const auto train = open_dataset(options, Split::Train);
  const auto [part, valid] = split_validation(train, 10, 7);
  const auto [part2, valid2] = split_validation(train, 10, 7);
  const auto [part3, valid3] = split_validation(train, 10, 8);
  ASSERT_EQ(part->size(), 40);
  ASSERT_EQ(valid->size(), 10);
  std::set<std::string> seen;
  bool differs = false;
  for (int64_t i = 0; i < 10; ++i) {
    EXPECT_TRUE(torch::equal(valid->get(i).image, valid2->get(i).image));
    differs = differs || !torch::equal(valid->get(i).image, valid3->get(i).image);
  }
  EXPECT_TRUE(differs) << "another seed should hold out other images";
  // Every training image is in exactly one part (images are distinct: random phase + noise).
  for (const auto& d : {part, valid}) {
    for (int64_t i = 0; i < d->size(); ++i) {
      const torch::Tensor x = d->get(i).image.contiguous();
      seen.insert(std::string(reinterpret_cast<const char*>(x.data_ptr<uint8_t>()),
                              static_cast<size_t>(x.numel())));
    }
  }
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_ERROR_CONTAINS(split_validation(train, 50, 0),
                        "valid-size must be in [1, 49] for a training set of 50 images, got 50");
}

TEST(Datasets, NormalisationPerDataset) {
  // CIFAR-10 and CIFAR-100 have their own statistics (the reference demo used one for both).
  EXPECT_NE(default_normalization("cifar10").mean, default_normalization("cifar100").mean);
  EXPECT_DOUBLE_EQ(default_normalization("mnist").mean.at(0), 0.1307);
  EXPECT_DOUBLE_EQ(default_normalization("imagefolder").std.at(2), 0.225);
  EXPECT_ERROR_CONTAINS(default_normalization("svhn"), "unknown dataset 'svhn'");
}

TEST(DatasetErrors, OneClearLineEach) {
  DatasetOptions missing;
  missing.name = "fashion-mnist";
  missing.root = "/nonexistent/fmnist";
  EXPECT_ERROR_CONTAINS(open_dataset(missing, Split::Train),
                        "fashion-mnist: dataset root '/nonexistent/fmnist' does not exist; install "
                        "Debian's dataset-fashion-mnist");
  missing.name = "cifar10";
  EXPECT_ERROR_CONTAINS(open_dataset(missing, Split::Train), "cifar-10-binary.tar.gz");
  missing.name = "svhn";
  EXPECT_ERROR_CONTAINS(open_dataset(missing, Split::Train),
                        "unknown dataset 'svhn': choose one of fashion-mnist, mnist");
  EXPECT_ERROR_CONTAINS(open("mnist", "bad_magic", Split::Train),
                        "is not an IDX image file (magic 0x00000803 expected, got 0x804)");
  EXPECT_ERROR_CONTAINS(open("mnist", "bad_count", Split::Train), "holds 5 images but");
  EXPECT_ERROR_CONTAINS(open("mnist", "bad_count", Split::Test),
                        "cannot find t10k-images-idx3-ubyte in");
  EXPECT_ERROR_CONTAINS(open("cifar10", "cifar_truncated", Split::Train),
                        "data_batch_3.bin' is truncated or not a cifar10 binary batch: 9119 bytes "
                        "is not a whole number of 3073-byte records");
  EXPECT_ERROR_CONTAINS(open("imagefolder", "empty_folder", Split::Train), "has no class folders");
  EXPECT_ERROR_CONTAINS(open("imagefolder", "empty_class", Split::Train),
                        "empty_class/train/b' has no images (.jpg, .jpeg or .png)");
  EXPECT_ERROR_CONTAINS(open("imagefolder", "empty_class", Split::Test), "val' does not exist");
}

}  // namespace
}  // namespace densenet::data
