#include "densenet/data/transforms.h"

#include "data/jpeg_region.h"
#include "densenet/data/image_transform.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace densenet::data {

namespace {

/// A read-only (H, W, C) uint8 view of a tensor, so that crops copy only the pixels they keep.
struct PixelView {
  const uint8_t* data;
  int64_t height, width, channels;
};

PixelView view_of(const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8 && image.is_contiguous(),
              "a transform takes a contiguous (H, W, C) uint8 image, got ", image.sizes(), " ",
              image.scalar_type());
  TORCH_CHECK(image.size(2) == 1 || image.size(2) == 3, "images have 1 or 3 channels, got ",
              image.size(2));
  return {image.data_ptr<uint8_t>(), image.size(0), image.size(1), image.size(2)};
}

PixelView view_of(const Image& image) {
  return {image.pixels.data(), image.height, image.width, image.channels};
}

Image crop(const PixelView& in, const CropBox& box) {
  TORCH_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                  box.top + box.height <= in.height && box.left + box.width <= in.width,
              "crop box (top ", box.top, ", left ", box.left, ", ", box.height, "x", box.width,
              ") is outside the ", in.height, "x", in.width, " image");
  Image out{box.width, box.height, in.channels,
            std::vector<uint8_t>(static_cast<size_t>(box.width * box.height * in.channels))};
  for (int64_t y = 0; y < box.height; ++y) {
    std::copy_n(in.data + ((box.top + y) * in.width + box.left) * in.channels,
                box.width * in.channels, out.pixels.data() + y * box.width * in.channels);
  }
  return out;
}

void flip_in_place(Image& image) {
  const int64_t c = image.channels;
  for (int64_t y = 0; y < image.height; ++y) {
    uint8_t* row = image.pixels.data() + y * image.width * c;
    for (int64_t x = 0; x < image.width / 2; ++x) {
      for (int64_t k = 0; k < c; ++k) std::swap(row[x * c + k], row[(image.width - 1 - x) * c + k]);
    }
  }
}

/// Pillow's Blend.c: out = (uint8)(a + alpha * (b - a)) in float, clipped to [0, 255] (the
/// clip only matters when alpha > 1, where Pillow clips too).
Image blend(const Image& degenerate, const Image& image, double factor) {
  const auto alpha = static_cast<float>(factor);
  Image out = image;
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    const int a = degenerate.pixels[i];
    const int b = image.pixels[i];
    const float value = static_cast<float>(a) + alpha * static_cast<float>(b - a);
    out.pixels[i] = value <= 0.0f ? 0 : value >= 255.0f ? 255 : static_cast<uint8_t>(value);
  }
  return out;
}

Image grey_as(const Image& image, const std::vector<uint8_t>& luma) {
  Image out{image.width, image.height, image.channels, {}};
  out.pixels.resize(image.pixels.size());
  for (size_t i = 0; i < luma.size(); ++i) {
    for (int64_t c = 0; c < image.channels; ++c) out.pixels[i * image.channels + c] = luma[i];
  }
  return out;
}

std::vector<uint8_t> luma_of(const Image& image) {
  if (image.channels == 1) return image.pixels;
  return to_luma(image).pixels;
}

void check_normalization(const Normalization& norm) {
  TORCH_CHECK(!norm.mean.empty() && norm.mean.size() == norm.std.size(),
              "normalisation needs as many std values as mean values (one or one per channel), "
              "got ",
              norm.mean.size(), " and ", norm.std.size());
  for (const double s : norm.std) TORCH_CHECK(s > 0, "std values must be positive, got ", s);
}

/// RandomCrop(size, padding) + RandomHorizontalFlip + ToTensor + Normalize.
class PadCropFlip : public Transform {
 public:
  PadCropFlip(int64_t size, int64_t padding, double hflip, Normalization norm)
      : size_(size), padding_(padding), hflip_(hflip), norm_(std::move(norm)) {}
  torch::Tensor apply(const torch::Tensor& image, Rng& rng) const override {
    const Image in = to_image(image);
    const CropBox box = random_crop_box(in.height, in.width, padding_, size_, rng);
    const bool flip = rng.bernoulli(hflip_);
    return normalize(pad_crop_flip(in, padding_, box, flip), norm_);
  }

 private:
  int64_t size_;
  int64_t padding_;
  double hflip_;
  Normalization norm_;
};

/// RandomResizedCrop + RandomHorizontalFlip [+ ColorJitter] + ToTensor [+ Lighting] +
/// Normalize.
class ResizedCropFlip : public Transform {
 public:
  ResizedCropFlip(int64_t size, Normalization norm, AugmentOptions augment)
      : size_(size), norm_(std::move(norm)), augment_(augment) {}
  torch::Tensor apply(const torch::Tensor& image, Rng& rng) const override {
    const PixelView in = view_of(image);
    const CropBox box = random_resized_crop_box(in.height, in.width, rng);
    return finish(crop(in, box), rng);
  }
  torch::Tensor apply_encoded(const EncodedSample& sample, Rng& rng,
                              ReadTimes& times) const override {
    const auto start = std::chrono::steady_clock::now();
    std::optional<Image> box;
    try {
      // The same draws as apply(): the box from the image size, then the rest.
      box = decode_jpeg_box(sample.bytes, sample.path, [&](int64_t height, int64_t width) {
        return random_resized_crop_box(height, width, rng);
      });
    } catch (const c10::Error& error) {
      throw decode_error(sample.path, error);
    }
    if (!box) return Transform::apply_encoded(sample, rng, times);  // PNG, CMYK: whole
    times.decode += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return finish(std::move(*box), rng);
  }

 private:
  /// Everything after the crop: resize, flip, jitter, ToTensor, lighting, Normalize.
  torch::Tensor finish(Image cropped, Rng& rng) const {
    Image out = resize_bilinear(cropped, size_, size_);
    if (rng.bernoulli(augment_.hflip)) flip_in_place(out);
    out = color_jitter(std::move(out), rng);
    if (augment_.lighting <= 0.0) return normalize(out, norm_);
    TORCH_CHECK(out.channels == 3, "PCA lighting needs RGB images, got ", out.channels,
                " channels");
    torch::Tensor chw = normalize(out, {{0.0}, {1.0}});  // ToTensor alone: x / 255
    const std::array<double, 3> alpha = {rng.normal() * augment_.lighting,
                                         rng.normal() * augment_.lighting,
                                         rng.normal() * augment_.lighting};
    apply_lighting(chw, alpha);
    return normalize_tensor(chw);
  }

  /// torchvision ColorJitter: a random order of the enabled adjustments, each with a factor
  /// uniform in [max(0, 1 - x), 1 + x].
  Image color_jitter(Image image, Rng& rng) const {
    const double amounts[3] = {augment_.brightness, augment_.contrast, augment_.saturation};
    if (amounts[0] <= 0 && amounts[1] <= 0 && amounts[2] <= 0) return image;
    int order[3] = {0, 1, 2};
    for (int i = 2; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    for (const int which : order) {
      const double x = amounts[which];
      if (x <= 0) continue;
      const double factor = rng.uniform(std::max(0.0, 1.0 - x), 1.0 + x);
      if (which == 0) image = adjust_brightness(image, factor);
      if (which == 1) image = adjust_contrast(image, factor);
      if (which == 2) image = adjust_saturation(image, factor);
    }
    return image;
  }
  torch::Tensor normalize_tensor(torch::Tensor chw) const {
    float* data = chw.data_ptr<float>();
    const int64_t channels = chw.size(0);
    const int64_t plane = chw.size(1) * chw.size(2);
    for (int64_t c = 0; c < channels; ++c) {
      const size_t k = norm_.mean.size() == 1 ? 0 : static_cast<size_t>(c);
      const auto m = static_cast<float>(norm_.mean[k]);
      const auto s = static_cast<float>(norm_.std[k]);
      for (int64_t i = 0; i < plane; ++i) data[c * plane + i] = (data[c * plane + i] - m) / s;
    }
    return chw;
  }

  int64_t size_;
  Normalization norm_;
  AugmentOptions augment_;
};

/// ToTensor + Normalize, after Resize + CenterCrop when the image is not input_size square
/// (resize 0 skips the resize).
class ResizeCenterCrop : public Transform {
 public:
  ResizeCenterCrop(int64_t resize, int64_t size, Normalization norm)
      : resize_(resize), size_(size), norm_(std::move(norm)) {}
  torch::Tensor apply(const torch::Tensor& image, Rng&) const override {
    const PixelView in = view_of(image);
    Image current = to_image(image);
    if (resize_ > 0 || in.height != size_ || in.width != size_) {
      // The evaluation steps of `densenet predict` (image_transform.h), not a copy of them.
      current = center_crop(resize_shorter_side(current, resize_ > 0 ? resize_ : size_), size_);
    }
    return normalize(current, norm_);
  }

 private:
  int64_t resize_, size_;
  Normalization norm_;
};

bool mnist_like_or_cifar(const std::string& name) {
  return name == "mnist" || name == "fashion-mnist" || name == "cifar10" || name == "cifar100";
}

void check_input_size(int64_t input_size) {
  TORCH_CHECK(input_size >= 1, "input size must be >= 1 pixel, got ", input_size);
}

}  // namespace

torch::Tensor Transform::apply_encoded(const EncodedSample& sample, Rng& rng,
                                       ReadTimes& times) const {
  const auto start = std::chrono::steady_clock::now();
  Image image;
  try {
    image = decode_image(sample.bytes, sample.path);
  } catch (const c10::Error& error) {
    throw decode_error(sample.path, error);
  }
  times.decode += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return apply(to_tensor(std::move(image)), rng);
}

Image to_image(const torch::Tensor& image) {
  const PixelView in = view_of(image.contiguous());
  return crop(in, {0, 0, in.height, in.width});
}

torch::Tensor to_tensor(Image image) {
  auto* pixels = new std::vector<uint8_t>(std::move(image.pixels));
  return torch::from_blob(
      pixels->data(), {image.height, image.width, image.channels},
      [pixels](void*) { delete pixels; }, torch::kUInt8);
}

CropBox random_crop_box(int64_t height, int64_t width, int64_t padding, int64_t size, Rng& rng) {
  const int64_t padded_h = height + 2 * padding;
  const int64_t padded_w = width + 2 * padding;
  TORCH_CHECK(size >= 1 && size <= padded_h && size <= padded_w, "cannot crop ", size, "x", size,
              " from a ", height, "x", width, " image padded by ", padding,
              "; use an input size of at most ", std::min(padded_h, padded_w));
  CropBox box{0, 0, size, size};
  box.top = rng.integer(0, padded_h - size);
  box.left = rng.integer(0, padded_w - size);
  return box;
}

Image pad_crop_flip(const Image& image, int64_t padding, const CropBox& box, bool flip) {
  const int64_t c = image.channels;
  Image out{box.width, box.height, c,
            std::vector<uint8_t>(static_cast<size_t>(box.width * box.height * c), 0)};
  for (int64_t y = 0; y < box.height; ++y) {
    const int64_t sy = box.top + y - padding;
    if (sy < 0 || sy >= image.height) continue;
    for (int64_t x = 0; x < box.width; ++x) {
      const int64_t sx = box.left + x - padding;
      if (sx < 0 || sx >= image.width) continue;
      const int64_t ox = flip ? box.width - 1 - x : x;
      std::copy_n(image.pixels.data() + (sy * image.width + sx) * c, c,
                  out.pixels.data() + (y * box.width + ox) * c);
    }
  }
  return out;
}

CropBox random_resized_crop_box(int64_t height, int64_t width, Rng& rng,
                                std::array<double, 2> scale, std::array<double, 2> ratio) {
  TORCH_CHECK(height >= 1 && width >= 1, "cannot crop an empty ", height, "x", width, " image");
  const double area = static_cast<double>(height * width);
  const double log_ratio[2] = {std::log(ratio[0]), std::log(ratio[1])};
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale[0], scale[1]);
    const double aspect_ratio = std::exp(rng.uniform(log_ratio[0], log_ratio[1]));
    // Python's round(): half to even, as std::nearbyint in the default rounding mode.
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect_ratio)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect_ratio)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = rng.integer(0, height - h);
      const int64_t left = rng.integer(0, width - w);
      return {top, left, h, w};
    }
  }
  // torchvision's fallback: the centre crop with the ratio clamped to the range.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < std::min(ratio[0], ratio[1])) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / std::min(ratio[0], ratio[1])));
  } else if (in_ratio > std::max(ratio[0], ratio[1])) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * std::max(ratio[0], ratio[1])));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

Image resized_crop_flip(const Image& image, const CropBox& box, int64_t size, bool flip) {
  Image out = resize_bilinear(crop(view_of(image), box), size, size);
  if (flip) flip_in_place(out);
  return out;
}

Image adjust_brightness(const Image& image, double factor) {
  Image black = image;
  std::fill(black.pixels.begin(), black.pixels.end(), uint8_t{0});
  return blend(black, image, factor);
}

Image adjust_contrast(const Image& image, double factor) {
  const std::vector<uint8_t> luma = luma_of(image);
  int64_t sum = 0;
  for (const uint8_t v : luma) sum += v;
  // ImageStat's mean is a Python float; int(mean + 0.5).
  const auto mean = static_cast<int64_t>(
      static_cast<double>(sum) / static_cast<double>(std::max<size_t>(luma.size(), 1)) + 0.5);
  Image grey = image;
  std::fill(grey.pixels.begin(), grey.pixels.end(), static_cast<uint8_t>(mean));
  return blend(grey, image, factor);
}

Image adjust_saturation(const Image& image, double factor) {
  if (image.channels == 1) return image;  // PIL: an L image's degenerate is itself
  return blend(grey_as(image, luma_of(image)), image, factor);
}

void apply_lighting(torch::Tensor& chw, const std::array<double, 3>& alpha) {
  TORCH_CHECK(chw.dim() == 3 && chw.size(0) == 3 && chw.scalar_type() == torch::kFloat32 &&
                  chw.is_contiguous(),
              "PCA lighting takes a contiguous (3, H, W) float32 tensor, got ", chw.sizes());
  // fb.resnet.torch datasets/imagenet.lua: pca.eigval, pca.eigvec (rows: R, G, B).
  static constexpr double kEigval[3] = {0.2175, 0.0188, 0.0045};
  static constexpr double kEigvec[3][3] = {
      {-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}};
  float* data = chw.data_ptr<float>();
  const int64_t plane = chw.size(1) * chw.size(2);
  for (int64_t c = 0; c < 3; ++c) {
    double shift = 0.0;
    for (int64_t j = 0; j < 3; ++j) shift += kEigvec[c][j] * alpha[j] * kEigval[j];
    const auto delta = static_cast<float>(shift);
    for (int64_t i = 0; i < plane; ++i) data[c * plane + i] += delta;
  }
}

torch::Tensor normalize(const Image& image, const Normalization& norm) {
  check_normalization(norm);
  const int64_t channels = image.channels;
  TORCH_CHECK(norm.mean.size() == 1 || static_cast<int64_t>(norm.mean.size()) == channels,
              "normalisation has ", norm.mean.size(), " values for a ", channels,
              "-channel image; give one value or one per channel");
  torch::Tensor tensor = torch::empty({channels, image.height, image.width}, torch::kFloat32);
  float* out = tensor.data_ptr<float>();
  const int64_t plane = image.height * image.width;
  for (int64_t c = 0; c < channels; ++c) {
    const size_t k = norm.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    const auto m = static_cast<float>(norm.mean[k]);
    const auto s = static_cast<float>(norm.std[k]);
    // torchvision: img.float().div(255), then .sub_(mean).div_(std), all in float32; a table
    // of the 256 results gives the same bits for a fraction of the work.
    float table[256];
    for (int v = 0; v < 256; ++v) table[v] = (static_cast<float>(v) / 255.0f - m) / s;
    const uint8_t* in = image.pixels.data() + c;
    float* plane_out = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) plane_out[i] = table[in[i * channels]];
  }
  return tensor;
}

std::shared_ptr<Transform> make_train_transform(const std::string& dataset_name, int64_t input_size,
                                                const Normalization& norm,
                                                const AugmentOptions& augment) {
  check_input_size(input_size);
  check_normalization(norm);
  TORCH_CHECK(augment.hflip >= 0 && augment.hflip <= 1, "flip probability must be in [0, 1], got ",
              augment.hflip);
  if (mnist_like_or_cifar(dataset_name) || (dataset_name == "synthetic" && input_size <= 64)) {
    TORCH_CHECK(augment.crop_padding >= 0 && augment.crop_padding <= input_size,
                "crop padding must be in [0, ", input_size, "] for ", input_size, "x", input_size,
                " images, got ", augment.crop_padding);
    return std::make_shared<PadCropFlip>(input_size, augment.crop_padding, augment.hflip, norm);
  }
  TORCH_CHECK(dataset_name == "imagefolder" || dataset_name == "synthetic", "unknown dataset '",
              dataset_name, "' for the train transform");
  return std::make_shared<ResizedCropFlip>(input_size, norm, augment);
}

std::shared_ptr<Transform> make_eval_transform(const std::string& dataset_name, int64_t input_size,
                                               const Normalization& norm) {
  check_input_size(input_size);
  check_normalization(norm);
  if (dataset_name == "imagefolder") {
    // torchvision's ImageNet recipe: Resize(256), CenterCrop(224), scaled for other sizes.
    return std::make_shared<ResizeCenterCrop>(input_size * 256 / 224, input_size, norm);
  }
  return std::make_shared<ResizeCenterCrop>(0, input_size, norm);
}

}  // namespace densenet::data
