#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace densenet::data {

enum class Split { Train, Test };

/// One decoded sample before augmentation.
struct RawSample {
  torch::Tensor image;  // (H, W, C) uint8, C = 1 or 3
  int64_t label = 0;
};

/// Wall time spent reading bytes and decoding them, added to by Dataset::get_timed (seconds).
struct ReadTimes {
  double read = 0.0;
  double decode = 0.0;
};

/// A sample's file as read, not yet decoded (image folders), so that a transform can decode
/// only the part it keeps.
struct EncodedSample {
  std::string bytes;
  std::string path;
  int64_t label = 0;
};

/// A failure of one sample (an unreadable or corrupt image file): the loader skips the sample,
/// warns once naming the file, counts it, and goes on. Any other exception stops the run.
struct DataError : std::runtime_error {
  DataError(std::string path, const std::string& reason);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A training or test set. get() is thread-safe: the loader calls it from its worker threads.
/// MNIST and CIFAR are decoded into memory when opened; an image folder reads and decodes each
/// file in get().
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// Throws DataError for a file that cannot be read or decoded, c10::Error for a bad index.
  virtual RawSample get(int64_t index) const = 0;
  /// get(), adding the time spent reading and decoding to `times`. The default counts all of
  /// get() as reading (in-memory datasets decode when opened).
  virtual RawSample get_timed(int64_t index, ReadTimes& times) const;
  /// The sample's encoded file, for datasets that read files (imagefolder); nullopt for the
  /// others (the default). Adds the read time to `times`. Throws DataError for an unreadable
  /// file.
  virtual std::optional<EncodedSample> encoded(int64_t index, ReadTimes& times) const;
  /// Class names, index = label.
  virtual const std::vector<std::string>& classes() const = 0;
  /// The classes of classes() that have no images here: an image folder labelled with a given
  /// class list (DatasetOptions::classes) that lacks some of its class folders. Empty for the
  /// others (the default).
  virtual std::vector<std::string> missing_classes() const;
  /// Channels of every image: 1 or 3.
  virtual int64_t channels() const = 0;
  /// e.g. "fashion-mnist train (60000 images, /usr/share/datasets/fashion-mnist)".
  virtual std::string describe() const = 0;
};

struct DatasetOptions {
  /// fashion-mnist | mnist | cifar10 | cifar100 | imagefolder | synthetic
  std::string name = "fashion-mnist";
  /// Empty = the dataset's default: /usr/share/datasets/fashion-mnist (Debian's
  /// dataset-fashion-mnist) for fashion-mnist, data/<name> otherwise.
  std::string root;
  /// synthetic: images per split (0 = 1024 for train, 256 for test), classes, side (pixels)
  /// and channels; the test split is drawn from a different stream than train.
  int64_t synthetic_size = 0;
  int64_t synthetic_classes = 10;
  int64_t synthetic_image_size = 32;
  int64_t synthetic_channels = 3;
  uint64_t synthetic_seed = 0;
  /// imagefolder: the classes to label with, index = label (the training split's for the val
  /// split, a checkpoint's for evaluation). Each class folder is looked up by name, so labels
  /// index the model's outputs even when the folder has only some of the classes; a folder
  /// whose name is not in the list is an error naming it. Empty: the folder's own classes,
  /// sorted (torchvision's ImageFolder). The other datasets have fixed classes and ignore it.
  std::vector<std::string> classes;
  /// Where `classes` comes from, for that error: "the training split", "checkpoint 'best.pth'".
  std::string classes_source = "the given class list";
};

/// The dataset names open_dataset accepts, in the order the CLI lists them.
const std::vector<std::string>& dataset_names();

/// The root used when DatasetOptions::root is empty.
std::string default_root(const std::string& dataset_name);

/// Opens a split. Files: mnist/fashion-mnist {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
/// in ROOT or ROOT/raw; cifar10 data_batch_{1..5}.bin/test_batch.bin in ROOT or
/// ROOT/cifar-10-batches-bin; cifar100 train.bin/test.bin (fine labels) in ROOT or
/// ROOT/cifar-100-binary; imagefolder ROOT/{train,val}/CLASS/**.{jpg,jpeg,png} with classes
/// sorted by name (or labelled with DatasetOptions::classes) and files in torchvision
/// ImageFolder's order. Throws c10::Error with one line for an unknown name, a missing root or
/// file (naming the path and where to get the data), a root that is a file, a wrong IDX magic
/// or count, a truncated CIFAR file, an empty folder, an empty class folder, or a class folder
/// that DatasetOptions::classes does not name.
std::shared_ptr<Dataset> open_dataset(const DatasetOptions& options, Split split);

/// The samples `indices` of `base`, in that order.
std::shared_ptr<Dataset> subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices,
                                std::string description);

/// Held-out split of a training set, fixed by the seed: {train part, validation part}. As the
/// gpleiss efficient_densenet_pytorch demo does: a random permutation of the indices, the last
/// valid_size for validation. Throws c10::Error unless 0 < valid_size < train->size().
std::pair<std::shared_ptr<Dataset>, std::shared_ptr<Dataset>> split_validation(
    std::shared_ptr<Dataset> train, int64_t valid_size, uint64_t seed);

/// Per-dataset normalisation (ToTensor then Normalize): mean/std per channel, or one value for
/// all channels.
struct Normalization {
  std::vector<double> mean, std;
};

/// mnist: 0.1307/0.3081 (pytorch/examples mnist); fashion-mnist: 0.2860/0.3530 (statistics of
/// its training set); cifar10: the gpleiss demo's (0.4914, 0.4822, 0.4465)/(0.2470, 0.2435,
/// 0.2616); cifar100: its own training-set statistics (0.5071, 0.4865, 0.4409)/(0.2673, 0.2564,
/// 0.2762), not CIFAR-10's (the demo's bug); imagefolder: ImageNet's (0.485, 0.456, 0.406)/
/// (0.229, 0.224, 0.225) (torchvision); synthetic: 0.5/0.25.
Normalization default_normalization(const std::string& dataset_name);

/// One line for a split that lacks some of its classes (Dataset::missing_classes), e.g.
/// "warning: the test split has no images of classes c, d (it has 3 of the 5 training
/// classes)", naming at most 10; empty when none is missing.
std::string missing_classes_warning(const Dataset& dataset, const std::string& split_name);

/// Writes the class names, one per line (the format of `densenet predict --labels`).
void write_class_list(const Dataset& dataset, const std::string& path);

}  // namespace densenet::data
