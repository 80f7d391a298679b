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
#include <tuple>

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

// A scratch image folder whose class folders link to the generated ones:
// ROOT/SPLIT/NAME -> data_dir()/folder/SPLIT/TARGET for each (NAME, TARGET).
std::string linked_folder(
    const std::string& name,
    const std::vector<std::tuple<std::string, std::string, std::string>>& links) {
  const std::filesystem::path root = std::filesystem::path(data_dir()) / name;
  std::filesystem::remove_all(root);
  for (const auto& [split, folder, target] : links) {
    std::filesystem::create_directories(root / split);
    std::filesystem::create_directory_symlink(
        std::filesystem::path(data_dir()) / "folder" / split / target, root / split / folder);
  }
  return root.string();
}

// Issue 21: val/{bee} beside train/{Zebra,apple,bee} was labelled 0, "Zebra", as torchvision's
// two ImageFolders would; labels must index the training classes by name.
TEST(Datasets, ImageFolderLabelsAClassSubsetByTrainingName) {
  DatasetOptions options;
  options.name = "imagefolder";
  options.root = linked_folder("subset_val", {{"train", "Zebra", "Zebra"},
                                              {"train", "apple", "apple"},
                                              {"train", "bee", "bee"},
                                              {"val", "bee", "bee"}});
  const auto train = open_dataset(options, Split::Train);
  ASSERT_EQ(train->classes(), (std::vector<std::string>{"Zebra", "apple", "bee"}));
  EXPECT_TRUE(train->missing_classes().empty());
  EXPECT_EQ(missing_classes_warning(*train, "train"), "");

  options.classes = train->classes();
  options.classes_source = "the training split";
  const auto val = open_dataset(options, Split::Test);
  EXPECT_EQ(val->classes(), train->classes());
  ReadTimes times;
  ASSERT_GT(val->size(), 0);
  for (int64_t i = 0; i < val->size(); ++i) {
    EXPECT_EQ(val->encoded(i, times)->label, 2) << val->encoded(i, times)->path;
  }
  EXPECT_EQ(val->missing_classes(), (std::vector<std::string>{"Zebra", "apple"}));
  EXPECT_NE(val->describe().find("images, 1 of 3 classes, "), std::string::npos) << val->describe();
  EXPECT_EQ(missing_classes_warning(*val, "test"),
            "warning: the test split has no images of classes Zebra, apple (it has 1 of the 3 "
            "training classes)");
  // A subset (max-eval-samples) lacks what its base lacks.
  EXPECT_EQ(subset(val, {0}, "first 1")->missing_classes(), val->missing_classes());

  // A longer class list: the warning names 10, then counts the rest.
  options.classes.clear();
  for (int c = 0; c < 12; ++c) options.classes.push_back("class" + std::to_string(c));
  options.classes.push_back("bee");
  EXPECT_EQ(missing_classes_warning(*open_dataset(options, Split::Test), "test"),
            "warning: the test split has no images of classes class0, class1, class2, class3, "
            "class4, class5, class6, class7, class8, class9 and 2 more (it has 1 of the 13 "
            "training classes)");

  // Without a class list: the folder's own classes, torchvision's ImageFolder.
  options.classes.clear();
  const auto own = open_dataset(options, Split::Test);
  EXPECT_EQ(own->classes(), (std::vector<std::string>{"bee"}));
  EXPECT_EQ(own->encoded(0, times)->label, 0);
}

TEST(Datasets, ImageFolderRefusesAClassTheListLacks) {
  DatasetOptions options;
  options.name = "imagefolder";
  options.root = linked_folder(
      "unknown_val", {{"val", "apple", "apple"}, {"val", "cat", "bee"}, {"val", "dog", "Zebra"}});
  options.classes = {"apple", "bee"};
  options.classes_source = "checkpoint 'best.pth'";
  EXPECT_ERROR_CONTAINS(open_dataset(options, Split::Test),
                        "imagefolder: class folders 'cat', 'dog' of '" + options.root +
                            "/val' are not among the 2 classes of checkpoint 'best.pth' (apple, "
                            "bee), so no output of the model scores them; remove or rename them");
  options.root = linked_folder("unknown_val", {{"val", "apple", "apple"}, {"val", "cat", "bee"}});
  EXPECT_ERROR_CONTAINS(open_dataset(options, Split::Test),
                        "class folder 'cat' of '" + options.root +
                            "/val' is not one of the 2 classes of checkpoint 'best.pth'");
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

// Issue 21: a file given as the root was reported as "does not exist".
TEST(DatasetErrors, RootIsAFile) {
  const std::string file = data_dir() + "/expected.safetensors";
  for (const auto& [name, holds] : std::vector<std::pair<std::string, std::string>>{
           {"fashion-mnist", "train-images-idx3-ubyte[.gz]"},
           {"mnist", "train-images-idx3-ubyte[.gz]"},
           {"cifar10", "data_batch_{1..5}.bin and test_batch.bin"},
           {"cifar100", "train.bin and test.bin"},
           {"imagefolder", "train/CLASS/ and val/CLASS/"}}) {
    DatasetOptions options;
    options.name = name;
    options.root = file;
    EXPECT_ERROR_CONTAINS(open_dataset(options, Split::Train),
                          name + ": dataset root '" + file +
                              "' is a file, not a directory: give the folder that holds " + holds);
  }
  // An archive: unpack it first.
  const std::string archive = data_dir() + "/cifar-10-binary.tar.gz";
  std::ofstream(archive) << "not really";
  DatasetOptions options;
  options.name = "cifar10";
  options.root = archive;
  EXPECT_ERROR_CONTAINS(open_dataset(options, Split::Test),
                        "is a file, not a directory (an archive? unpack it): give the folder");
  // ROOT/val as a file.
  const std::string root = linked_folder("val_is_file", {{"train", "apple", "apple"}});
  std::ofstream(root + "/val") << "not a folder";
  options.name = "imagefolder";
  options.root = root;
  EXPECT_ERROR_CONTAINS(open_dataset(options, Split::Test),
                        "imagefolder: '" + root + "/val' is a file, not a directory: expected " +
                            root + "/val/CLASS/IMAGE.jpg");
}

}  // namespace
}  // namespace densenet::data
