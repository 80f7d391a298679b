#include "densenet/data/dataset.h"

#include "data/jpeg_region.h"

#include "densenet/data/image.h"
#include "densenet/data/rng.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <unordered_map>

namespace densenet::data {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string split_name(Split split) {
  return split == Split::Train ? "train" : "test";
}

/// Where to get each dataset, for the missing-root message.
std::string where_to_get(const std::string& name) {
  if (name == "fashion-mnist") {
    return "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or "
           "download the IDX files from https://github.com/zalandoresearch/fashion-mnist";
  }
  if (name == "mnist") {
    return "download the IDX files from https://ossci-datasets.s3.amazonaws.com/mnist/ "
           "(mirror of http://yann.lecun.com/exdb/mnist/)";
  }
  if (name == "cifar10") {
    return "download and unpack https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
  }
  if (name == "cifar100") {
    return "download and unpack https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
  }
  return "put images in ROOT/train/CLASS/ and ROOT/val/CLASS/ (for ImageNet, "
         "scripts/imagenet_valprep.py sorts the validation images into class folders)";
}

/// What a dataset's root folder holds, for a root that is not a folder.
std::string root_holds(const std::string& name) {
  if (name == "fashion-mnist" || name == "mnist") {
    return "train-images-idx3-ubyte[.gz] and the other IDX files (or their raw/ folder)";
  }
  if (name == "cifar10")
    return "data_batch_{1..5}.bin and test_batch.bin (or cifar-10-batches-bin/)";
  if (name == "cifar100") return "train.bin and test.bin (or cifar-100-binary/)";
  return "train/CLASS/ and val/CLASS/";
}

/// The kind of `path` (not_found when it does not exist); one line for a path that cannot be
/// examined (a folder on the way that may not be read).
fs::file_type file_type_of(const std::string& dataset, const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  TORCH_CHECK(status.type() == fs::file_type::not_found || !error, dataset, ": cannot read '", path,
              "': ", error.message());
  return status.type();
}

/// " is a file, not a directory" (or " is not a directory": a device, a socket), and for an
/// archive what to do with it.
std::string not_a_directory(const std::string& path, fs::file_type type) {
  std::string text =
      type == fs::file_type::regular ? " is a file, not a directory" : " is not a directory";
  for (const char* archive : {".tar.gz", ".tgz", ".tar", ".zip", ".gz"}) {
    const std::string suffix = archive;
    if (path.size() > suffix.size() &&
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return text + " (an archive? unpack it)";
    }
  }
  return text;
}

void check_root(const std::string& name, const std::string& root) {
  const fs::file_type type = file_type_of(name, root);
  TORCH_CHECK(type != fs::file_type::not_found, name, ": dataset root '", root,
              "' does not exist; ", where_to_get(name), ", or give its folder with --data");
  TORCH_CHECK(type == fs::file_type::directory, name, ": dataset root '", root, "'",
              not_a_directory(root, type), ": give the folder that holds ", root_holds(name),
              " with --data");
}

/// "a, b, c", at most `limit` names, then "and N more".
std::string name_list(const std::vector<std::string>& names, size_t limit = 10) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < limit; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > limit) text += " and " + std::to_string(names.size() - limit) + " more";
  return text;
}

/// The first of `names` that exists in one of `dirs`.
std::string find_file(const std::string& dataset, const std::vector<std::string>& dirs,
                      const std::vector<std::string>& names) {
  for (const auto& dir : dirs) {
    for (const auto& name : names) {
      const fs::path path = fs::path(dir) / name;
      if (fs::is_regular_file(path)) return path.string();
    }
  }
  TORCH_CHECK(false, dataset, ": cannot find ", names.front(), " in '", dirs.front(), "'",
              dirs.size() > 1 ? " or its subfolder" : "", "; ", where_to_get(dataset));
  return {};
}

/// The whole file, gunzipped when it is gzip data (zlib reads plain files as they are).
std::string read_maybe_gzipped(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  TORCH_CHECK(file != nullptr, "cannot open '", path, "'");
  std::string out;
  char buffer[1 << 16];
  while (true) {
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      TORCH_CHECK(false, "cannot decompress '", path, "': ", message);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  gzclose(file);
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw DataError(path, "cannot open the file");
  std::ostringstream contents;
  contents << stream.rdbuf();
  if (stream.bad()) throw DataError(path, "cannot read the file");
  return contents.str();
}

uint32_t big_endian(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

/// An image tensor that owns an Image's pixels without copying them.
torch::Tensor image_tensor(Image image) {
  auto* pixels = new std::vector<uint8_t>(std::move(image.pixels));
  return torch::from_blob(
      pixels->data(), {image.height, image.width, image.channels},
      [pixels](void*) { delete pixels; }, torch::kUInt8);
}

/// MNIST and CIFAR: every image decoded once into one tensor.
class InMemoryDataset : public Dataset {
 public:
  InMemoryDataset(std::string description, torch::Tensor images, std::vector<int64_t> labels,
                  std::vector<std::string> classes)
      : description_(std::move(description)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        classes_(std::move(classes)) {}
  int64_t size() const override { return images_.size(0); }
  RawSample get(int64_t index) const override {
    TORCH_CHECK(index >= 0 && index < size(), "sample index ", index, " is out of range [0, ",
                size(), ")");
    return {images_[index], labels_[static_cast<size_t>(index)]};
  }
  const std::vector<std::string>& classes() const override { return classes_; }
  int64_t channels() const override { return images_.size(3); }
  std::string describe() const override { return description_; }

 private:
  std::string description_;
  torch::Tensor images_;  // (N, H, W, C) uint8
  std::vector<int64_t> labels_;
  std::vector<std::string> classes_;
};

std::shared_ptr<Dataset> open_idx(const std::string& name, const std::string& root, Split split) {
  check_root(name, root);
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const std::vector<std::string> dirs = {root, (fs::path(root) / "raw").string()};
  const std::string image_path =
      find_file(name, dirs, {prefix + "-images-idx3-ubyte", prefix + "-images-idx3-ubyte.gz"});
  const std::string label_path =
      find_file(name, dirs, {prefix + "-labels-idx1-ubyte", prefix + "-labels-idx1-ubyte.gz"});
  const std::string images = read_maybe_gzipped(image_path);
  const std::string labels = read_maybe_gzipped(label_path);
  TORCH_CHECK(images.size() >= 16 && big_endian(images, 0) == 0x803, "'", image_path,
              "' is not an IDX image file (magic 0x00000803 expected, got 0x", std::hex,
              images.size() >= 4 ? big_endian(images, 0) : 0, std::dec, ")");
  TORCH_CHECK(labels.size() >= 8 && big_endian(labels, 0) == 0x801, "'", label_path,
              "' is not an IDX label file (magic 0x00000801 expected, got 0x", std::hex,
              labels.size() >= 4 ? big_endian(labels, 0) : 0, std::dec, ")");
  const int64_t count = big_endian(images, 4);
  const int64_t rows = big_endian(images, 8);
  const int64_t cols = big_endian(images, 12);
  const int64_t label_count = big_endian(labels, 4);
  TORCH_CHECK(count == label_count, "'", image_path, "' holds ", count, " images but '", label_path,
              "' holds ", label_count, " labels");
  TORCH_CHECK(static_cast<int64_t>(images.size()) == 16 + count * rows * cols, "'", image_path,
              "' should hold ", count, " images of ", rows, "x", cols, " (",
              16 + count * rows * cols, " bytes) but has ", images.size(), " bytes");
  TORCH_CHECK(static_cast<int64_t>(labels.size()) == 8 + count, "'", label_path, "' should hold ",
              count, " labels (", 8 + count, " bytes) but has ", labels.size(), " bytes");
  torch::Tensor pixels = torch::empty({count, rows, cols, 1}, torch::kUInt8);
  std::memcpy(pixels.data_ptr<uint8_t>(), images.data() + 16,
              static_cast<size_t>(count * rows * cols));
  std::vector<int64_t> targets(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    targets[i] = static_cast<unsigned char>(labels[static_cast<size_t>(8 + i)]);
    TORCH_CHECK(targets[i] < 10, "'", label_path, "': label ", targets[i], " of sample ", i,
                " is not a class 0..9");
  }
  // torchvision's class names.
  std::vector<std::string> classes =
      name == "mnist"
          ? std::vector<std::string>{"0 - zero", "1 - one", "2 - two",   "3 - three", "4 - four",
                                     "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"}
          : std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  std::ostringstream description;
  description << name << " " << split_name(split) << " (" << count << " images, " << root << ")";
  return std::make_shared<InMemoryDataset>(description.str(), pixels, std::move(targets),
                                           std::move(classes));
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream stream(path);
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::shared_ptr<Dataset> open_cifar(const std::string& name, const std::string& root, Split split) {
  check_root(name, root);
  const bool hundred = name == "cifar100";
  const std::vector<std::string> dirs = {
      root, (fs::path(root) / (hundred ? "cifar-100-binary" : "cifar-10-batches-bin")).string()};
  std::vector<std::string> files;
  if (hundred) {
    files = {split == Split::Train ? "train.bin" : "test.bin"};
  } else if (split == Split::Train) {
    for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    files = {"test_batch.bin"};
  }
  // Record: [coarse label] label, then 1024 R, 1024 G, 1024 B bytes of a 32x32 image.
  const int64_t label_bytes = hundred ? 2 : 1;
  const int64_t record = label_bytes + 3 * 32 * 32;
  std::vector<std::string> contents;
  int64_t count = 0;
  std::string dir_found;
  for (const auto& file : files) {
    const std::string path = find_file(name, dirs, {file});
    contents.push_back(read_maybe_gzipped(path));
    const auto size = static_cast<int64_t>(contents.back().size());
    TORCH_CHECK(size > 0 && size % record == 0, "'", path, "' is truncated or not a ", name,
                " binary batch: ", size, " bytes is not a whole number of ", record,
                "-byte records");
    count += size / record;
    dir_found = fs::path(path).parent_path().string();
  }
  torch::Tensor pixels = torch::empty({count, 32, 32, 3}, torch::kUInt8);
  uint8_t* out = pixels.data_ptr<uint8_t>();
  std::vector<int64_t> labels;
  labels.reserve(static_cast<size_t>(count));
  const int64_t classes = hundred ? 100 : 10;
  for (const auto& bytes : contents) {
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    for (size_t start = 0; start < bytes.size(); start += static_cast<size_t>(record)) {
      const int64_t label = data[start + label_bytes - 1];  // CIFAR-100: the fine label
      TORCH_CHECK(label < classes, name, ": label ", label, " of sample ", labels.size(),
                  " is not a class 0..", classes - 1);
      labels.push_back(label);
      const uint8_t* planes = data + start + label_bytes;
      for (int64_t i = 0; i < 1024; ++i) {
        for (int64_t c = 0; c < 3; ++c) *out++ = planes[c * 1024 + i];
      }
    }
  }
  std::vector<std::string> names;
  if (hundred) {
    names = read_lines((fs::path(dir_found) / "fine_label_names.txt").string());
  } else {
    names = read_lines((fs::path(dir_found) / "batches.meta.txt").string());
  }
  if (static_cast<int64_t>(names.size()) != classes) {
    names.clear();
    if (!hundred) {
      names = {"airplane", "automobile", "bird",  "cat",  "deer",
               "dog",      "frog",       "horse", "ship", "truck"};
    } else {
      for (int64_t i = 0; i < classes; ++i) names.push_back(std::to_string(i));
    }
  }
  std::ostringstream description;
  description << name << " " << split_name(split) << " (" << count << " images, " << root << ")";
  return std::make_shared<InMemoryDataset>(description.str(), pixels, std::move(labels),
                                           std::move(names));
}

bool is_image_file(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".jpg" || extension == ".jpeg" || extension == ".png";
}

/// torchvision's find_classes: the subfolders of `folder`, sorted by name.
std::vector<std::string> class_folders(const std::string& folder) {
  const fs::file_type type = file_type_of("imagefolder", folder);
  TORCH_CHECK(type != fs::file_type::not_found, "imagefolder: '", folder, "' does not exist; ",
              where_to_get("imagefolder"));
  TORCH_CHECK(type == fs::file_type::directory, "imagefolder: '", folder, "'",
              not_a_directory(folder, type), ": expected ", folder, "/CLASS/IMAGE.jpg");
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_directory()) classes.push_back(entry.path().filename().string());
  }
  std::sort(classes.begin(), classes.end());
  TORCH_CHECK(!classes.empty(), "imagefolder: '", folder, "' has no class folders; expected ",
              folder, "/CLASS/IMAGE.jpg");
  return classes;
}

/// The label of each of `found` (a split's class folders): its index in `known` (a class list
/// that another split or a checkpoint defines), looked up by name, not by position, so that a
/// split with only some of the classes is labelled as the model's outputs are. The known
/// classes that no folder has go to `missing`. Throws c10::Error naming every folder that
/// `known` lacks: no output of the model could score its images.
std::vector<int64_t> labels_by_name(const std::vector<std::string>& found,
                                    const std::vector<std::string>& known,
                                    const std::string& source, const std::string& folder,
                                    std::vector<std::string>& missing) {
  std::unordered_map<std::string, int64_t> index;
  for (size_t i = 0; i < known.size(); ++i) index.emplace(known[i], static_cast<int64_t>(i));
  std::vector<int64_t> labels;
  std::vector<std::string> unknown;
  for (const auto& name : found) {
    const auto hit = index.find(name);
    if (hit == index.end()) {
      unknown.push_back("'" + name + "'");
    } else {
      labels.push_back(hit->second);
    }
  }
  const bool one = unknown.size() == 1;
  TORCH_CHECK(unknown.empty(), "imagefolder: class folder", one ? " " : "s ", name_list(unknown),
              " of '", folder, "' ", one ? "is not one of" : "are not among", " the ", known.size(),
              " classes of ", source, " (", name_list(known),
              "), so no output of the model scores ", one ? "it" : "them", "; remove or rename ",
              one ? "it" : "them");
  for (const auto& name : known) {
    if (std::find(found.begin(), found.end(), name) == found.end()) missing.push_back(name);
  }
  return labels;
}

/// ROOT/{train,val}/CLASS/**.{jpg,jpeg,png}, read and decoded in get().
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(const std::string& root, Split split, const DatasetOptions& options) {
    check_root("imagefolder", root);
    folder_ = (fs::path(root) / (split == Split::Train ? "train" : "val")).string();
    const std::vector<std::string> found = class_folders(folder_);
    std::vector<int64_t> labels;
    if (options.classes.empty()) {
      classes_ = found;
      for (size_t i = 0; i < found.size(); ++i) labels.push_back(static_cast<int64_t>(i));
    } else {
      classes_ = options.classes;
      labels = labels_by_name(found, classes_, options.classes_source, folder_, missing_);
    }
    for (size_t i = 0; i < found.size(); ++i) add_samples(fs::path(folder_) / found[i], labels[i]);
    std::ostringstream description;
    description << "imagefolder " << split_name(split) << " (" << samples_.size() << " images, ";
    if (!missing_.empty()) description << found.size() << " of ";
    description << classes_.size() << " classes, " << folder_ << ")";
    description_ = description.str();
  }
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  RawSample get(int64_t index) const override {
    ReadTimes times;
    return get_timed(index, times);
  }
  RawSample get_timed(int64_t index, ReadTimes& times) const override {
    const EncodedSample file = *encoded(index, times);
    const auto start = Clock::now();
    Image image;
    try {
      image = decode_image(file.bytes, file.path);
    } catch (const c10::Error& error) {
      throw decode_error(file.path, error);
    }
    times.decode += seconds_since(start);
    return {image_tensor(std::move(image)), file.label};
  }
  std::optional<EncodedSample> encoded(int64_t index, ReadTimes& times) const override {
    TORCH_CHECK(index >= 0 && index < size(), "sample index ", index, " is out of range [0, ",
                size(), ")");
    const auto& [path, label] = samples_[static_cast<size_t>(index)];
    const auto start = Clock::now();
    EncodedSample file{read_bytes(path), path, label};
    times.read += seconds_since(start);
    return file;
  }
  const std::vector<std::string>& classes() const override { return classes_; }
  std::vector<std::string> missing_classes() const override { return missing_; }
  int64_t channels() const override { return 3; }
  std::string describe() const override { return description_; }

 private:
  /// The images of one class folder, labelled `label`, in torchvision's make_dataset order:
  /// sorted(os.walk(class folder)), then sorted file names.
  void add_samples(const fs::path& class_dir, int64_t label) {
    std::vector<std::string> dirs = {class_dir.string()};
    for (const auto& entry : fs::recursive_directory_iterator(
             class_dir, fs::directory_options::follow_directory_symlink)) {
      if (entry.is_directory()) dirs.push_back(entry.path().string());
    }
    std::sort(dirs.begin(), dirs.end());
    const size_t before = samples_.size();
    for (const auto& dir : dirs) {
      std::vector<std::string> names;
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_directory() && is_image_file(entry.path())) {
          names.push_back(entry.path().filename().string());
        }
      }
      std::sort(names.begin(), names.end());
      for (const auto& file : names) samples_.push_back({(fs::path(dir) / file).string(), label});
    }
    TORCH_CHECK(samples_.size() > before, "imagefolder: class folder '", class_dir.string(),
                "' has no images (.jpg, .jpeg or .png)");
  }

  std::string folder_;
  std::string description_;
  std::vector<std::string> classes_;  // index = label
  std::vector<std::string> missing_;  // classes_ without a folder here
  std::vector<std::pair<std::string, int64_t>> samples_;
};

/// Learnable random images made on the fly: class c has its own mean colour and stripe
/// orientation/frequency; each image adds a random phase and noise.
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(const DatasetOptions& options, Split split)
      : size_(options.synthetic_size > 0 ? options.synthetic_size
                                         : (split == Split::Train ? 1024 : 256)),
        side_(options.synthetic_image_size),
        channels_(options.synthetic_channels),
        seed_(options.synthetic_seed),
        stream_(split == Split::Train ? 1 : 2) {
    TORCH_CHECK(options.synthetic_classes >= 1, "synthetic: classes must be >= 1, got ",
                options.synthetic_classes);
    TORCH_CHECK(side_ >= 1, "synthetic: image size must be >= 1 pixel, got ", side_);
    TORCH_CHECK(channels_ == 1 || channels_ == 3, "synthetic: channels must be 1 or 3, got ",
                channels_);
    for (int64_t c = 0; c < options.synthetic_classes; ++c) {
      classes_.push_back("class" + std::to_string(c));
      Rng rng(seed_, 0, static_cast<uint64_t>(c));
      Prototype p;
      for (auto& m : p.mean) m = rng.uniform(60.0, 196.0);
      p.angle = rng.uniform(0.0, M_PI);
      p.frequency = rng.uniform(1.0, 4.0);
      prototypes_.push_back(p);
    }
  }
  int64_t size() const override { return size_; }
  RawSample get(int64_t index) const override {
    TORCH_CHECK(index >= 0 && index < size_, "sample index ", index, " is out of range [0, ", size_,
                ")");
    const int64_t label = index % static_cast<int64_t>(prototypes_.size());
    const Prototype& p = prototypes_[static_cast<size_t>(label)];
    Rng rng(seed_, stream_, static_cast<uint64_t>(index));
    const double phase = rng.uniform(0.0, 2.0 * M_PI);
    torch::Tensor image = torch::empty({side_, side_, channels_}, torch::kUInt8);
    uint8_t* out = image.data_ptr<uint8_t>();
    const double cx = std::cos(p.angle) / static_cast<double>(side_);
    const double cy = std::sin(p.angle) / static_cast<double>(side_);
    for (int64_t y = 0; y < side_; ++y) {
      for (int64_t x = 0; x < side_; ++x) {
        const double stripe = 40.0 * std::sin(2.0 * M_PI * p.frequency * (x * cx + y * cy) + phase);
        for (int64_t c = 0; c < channels_; ++c) {
          const double value = p.mean[static_cast<size_t>(c)] + stripe + rng.uniform(-20, 20);
          *out++ = static_cast<uint8_t>(std::clamp(value, 0.0, 255.0));
        }
      }
    }
    return {image, label};
  }
  const std::vector<std::string>& classes() const override { return classes_; }
  int64_t channels() const override { return channels_; }
  std::string describe() const override {
    std::ostringstream out;
    out << "synthetic " << (stream_ == 1 ? "train" : "test") << " (" << size_ << " images, "
        << classes_.size() << " classes, " << side_ << "x" << side_ << "x" << channels_ << ")";
    return out.str();
  }

 private:
  struct Prototype {
    std::array<double, 3> mean{};
    double angle = 0.0, frequency = 1.0;
  };
  int64_t size_, side_, channels_;
  uint64_t seed_, stream_;
  std::vector<std::string> classes_;
  std::vector<Prototype> prototypes_;
};

class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices,
                std::string description)
      : base_(std::move(base)), indices_(std::move(indices)), description_(std::move(description)) {
    for (const int64_t i : indices_) {
      TORCH_CHECK(i >= 0 && i < base_->size(), "subset index ", i, " is out of range [0, ",
                  base_->size(), ")");
    }
  }
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  RawSample get(int64_t index) const override { return base_->get(map(index)); }
  RawSample get_timed(int64_t index, ReadTimes& times) const override {
    return base_->get_timed(map(index), times);
  }
  std::optional<EncodedSample> encoded(int64_t index, ReadTimes& times) const override {
    return base_->encoded(map(index), times);
  }
  const std::vector<std::string>& classes() const override { return base_->classes(); }
  std::vector<std::string> missing_classes() const override { return base_->missing_classes(); }
  int64_t channels() const override { return base_->channels(); }
  std::string describe() const override { return description_; }

 private:
  int64_t map(int64_t index) const {
    TORCH_CHECK(index >= 0 && index < size(), "sample index ", index, " is out of range [0, ",
                size(), ")");
    return indices_[static_cast<size_t>(index)];
  }
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
  std::string description_;
};

}  // namespace

DataError::DataError(std::string path, const std::string& reason)
    : std::runtime_error("cannot read image '" + path + "': " + reason), path_(std::move(path)) {}

std::optional<EncodedSample> Dataset::encoded(int64_t, ReadTimes&) const {
  return std::nullopt;
}

std::vector<std::string> Dataset::missing_classes() const {
  return {};
}

DataError decode_error(const std::string& path, const c10::Error& error) {
  // The decoder's message names the file too; keep only its reason.
  std::string reason = error.what_without_backtrace();
  const std::string prefix = "cannot decode '" + path + "'";
  if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
  if (reason.rfind(": ", 0) == 0) reason = reason.substr(2);
  if (reason.rfind(" as ", 0) == 0) reason = reason.substr(4);
  return DataError(path, reason);
}

RawSample Dataset::get_timed(int64_t index, ReadTimes& times) const {
  const auto start = Clock::now();
  RawSample sample = get(index);
  times.read += seconds_since(start);
  return sample;
}

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"fashion-mnist", "mnist",       "cifar10",
                                                 "cifar100",      "imagefolder", "synthetic"};
  return names;
}

std::string default_root(const std::string& dataset_name) {
  if (dataset_name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  return "data/" + dataset_name;
}

std::shared_ptr<Dataset> open_dataset(const DatasetOptions& options, Split split) {
  const std::string& name = options.name;
  const auto& names = dataset_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    TORCH_CHECK(false, "unknown dataset '", name, "': choose one of ", list);
  }
  const std::string root = options.root.empty() ? default_root(name) : options.root;
  if (name == "fashion-mnist" || name == "mnist") return open_idx(name, root, split);
  if (name == "cifar10" || name == "cifar100") return open_cifar(name, root, split);
  if (name == "imagefolder") return std::make_shared<ImageFolderDataset>(root, split, options);
  return std::make_shared<SyntheticDataset>(options, split);
}

std::shared_ptr<Dataset> subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices,
                                std::string description) {
  return std::make_shared<SubsetDataset>(std::move(base), std::move(indices),
                                         std::move(description));
}

std::pair<std::shared_ptr<Dataset>, std::shared_ptr<Dataset>> split_validation(
    std::shared_ptr<Dataset> train, int64_t valid_size, uint64_t seed) {
  TORCH_CHECK(train != nullptr, "split_validation: no training set");
  const int64_t n = train->size();
  TORCH_CHECK(valid_size > 0 && valid_size < n, "valid-size must be in [1, ", n - 1,
              "] for a training set of ", n, " images, got ", valid_size);
  const std::vector<int64_t> order = permutation(n, seed, 0, /*stream=*/1);
  std::vector<int64_t> train_part(order.begin(), order.end() - valid_size);
  std::vector<int64_t> valid_part(order.end() - valid_size, order.end());
  const std::string base = train->describe();
  auto train_subset = subset(train, std::move(train_part),
                             base + " minus " + std::to_string(valid_size) + " held out");
  auto valid_subset =
      subset(train, std::move(valid_part), std::to_string(valid_size) + " held out of " + base);
  return {train_subset, valid_subset};
}

Normalization default_normalization(const std::string& dataset_name) {
  if (dataset_name == "mnist") return {{0.1307}, {0.3081}};
  if (dataset_name == "fashion-mnist") return {{0.2860}, {0.3530}};
  if (dataset_name == "cifar10") {
    return {{0.49139968, 0.48215841, 0.44653091}, {0.24703223, 0.24348513, 0.26158784}};
  }
  if (dataset_name == "cifar100") {
    return {{0.50707516, 0.48654887, 0.44091784}, {0.26733429, 0.25643846, 0.27615047}};
  }
  if (dataset_name == "imagefolder") return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  TORCH_CHECK(dataset_name == "synthetic", "unknown dataset '", dataset_name,
              "' for normalisation");
  return {{0.5}, {0.25}};
}

std::string missing_classes_warning(const Dataset& dataset, const std::string& split_name) {
  const std::vector<std::string> missing = dataset.missing_classes();
  if (missing.empty()) return {};
  const size_t total = dataset.classes().size();
  return "warning: the " + split_name + " split has no images of class" +
         (missing.size() == 1 ? " " : "es ") + name_list(missing) + " (it has " +
         std::to_string(total - missing.size()) + " of the " + std::to_string(total) +
         " training classes)";
}

void write_class_list(const Dataset& dataset, const std::string& path) {
  std::ofstream stream(path);
  TORCH_CHECK(stream.good(), "cannot write the class list '", path, "'");
  for (const auto& name : dataset.classes()) stream << name << "\n";
  stream.flush();
  TORCH_CHECK(stream.good(), "cannot write the class list '", path, "'");
}

}  // namespace densenet::data
