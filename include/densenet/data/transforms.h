#pragma once

#include "densenet/data/dataset.h"
#include "densenet/data/image.h"
#include "densenet/data/rng.h"

#include <torch/types.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace densenet::data {

/// Sample-level augmentation; deterministic given the Rng passed, which the loader makes from
/// (seed, epoch, sample index).
class Transform {
 public:
  virtual ~Transform() = default;
  /// (H, W, C) uint8 -> (C, H', W') float32, normalised. Throws c10::Error for an image the
  /// transform cannot take (wrong channel count, smaller than a crop without padding).
  virtual torch::Tensor apply(const torch::Tensor& image, Rng& rng) const = 0;
  /// apply() on the decoded file, identical to decoding it whole and calling apply() with the
  /// same rng. The default does exactly that; RandomResizedCrop decodes only the JPEG rows and
  /// columns its box needs. Adds decode time to times.decode. Throws DataError when the file
  /// cannot be decoded.
  virtual torch::Tensor apply_encoded(const EncodedSample& sample, Rng& rng,
                                      ReadTimes& times) const;
};

/// Augmentation switches beyond each dataset's standard pipeline.
struct AugmentOptions {
  /// ColorJitter(brightness, contrast, saturation) factors, 0 = off (torchvision semantics:
  /// each factor drawn uniformly from [max(0, 1 - x), 1 + x], applied in a random order).
  double brightness = 0.0, contrast = 0.0, saturation = 0.0;
  /// AlexNet-style PCA lighting with this alpha standard deviation (0.1 in fb.resnet.torch),
  /// 0 = off. A new alpha is drawn for every image.
  double lighting = 0.0;
  /// Zero padding on each side before the random crop of MNIST-like and CIFAR images
  /// (torchvision RandomCrop(size, padding)); 4 is the CIFAR recipes' value, 0 leaves only the
  /// flip. Image folders use RandomResizedCrop instead and ignore it.
  int64_t crop_padding = 4;
  /// Probability of a horizontal flip (timm's `hflip`; torchvision RandomHorizontalFlip(p)).
  /// 0 for digits, which a mirror changes.
  double hflip = 0.5;
};

/// Train pipelines. MNIST-likes and CIFAR: RandomCrop(input_size, padding=crop_padding) + flip
/// + ToTensor + Normalize; imagefolder and synthetic images larger than 64 pixels:
/// RandomResizedCrop(input_size) + flip [+ ColorJitter + lighting when asked] + ToTensor +
/// Normalize.
std::shared_ptr<Transform> make_train_transform(const std::string& dataset_name, int64_t input_size,
                                                const Normalization& norm,
                                                const AugmentOptions& augment = {});
/// Eval pipelines: imagefolder Resize(input_size * 256 / 224) + CenterCrop(input_size), the
/// transform `densenet predict` uses; otherwise ToTensor + Normalize, with a resize + centre
/// crop only when the image is not input_size already.
std::shared_ptr<Transform> make_eval_transform(const std::string& dataset_name, int64_t input_size,
                                               const Normalization& norm);

// The steps, public so that tests can compare each with torchvision for fixed parameters.

/// A crop box in pixels: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

/// The (H, W, C) uint8 tensor as an Image (a copy) and back.
Image to_image(const torch::Tensor& image);
torch::Tensor to_tensor(Image image);

/// torchvision RandomCrop(size, padding)'s crop at a given box of the zero-padded image:
/// box.top/left index the padded image, whose size is (H + 2 padding, W + 2 padding). With
/// `flip` the result is mirrored left-right afterwards (RandomHorizontalFlip).
Image pad_crop_flip(const Image& image, int64_t padding, const CropBox& box, bool flip);

/// torchvision RandomCrop.get_params after padding: top uniform in [0, H + 2p - size], left in
/// [0, W + 2p - size].
CropBox random_crop_box(int64_t height, int64_t width, int64_t padding, int64_t size, Rng& rng);

/// torchvision RandomResizedCrop.get_params (v0.14): 10 tries of area fraction uniform in
/// scale and log-uniform aspect ratio in ratio, w = round(sqrt(area * ratio)),
/// h = round(sqrt(area / ratio)) (round half to even), accepted when it fits; then the
/// centre crop clamped to the ratio range.
CropBox random_resized_crop_box(int64_t height, int64_t width, Rng& rng,
                                std::array<double, 2> scale = {0.08, 1.0},
                                std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});

/// torchvision F.resized_crop on a PIL image: PIL crop then resize((size, size), BILINEAR),
/// then mirrored when `flip`.
Image resized_crop_flip(const Image& image, const CropBox& box, int64_t size, bool flip);

/// PIL's ImageEnhance (torchvision F.adjust_brightness/contrast/saturation on PIL images):
/// Image.blend(degenerate, image, factor), per byte truncated after float arithmetic.
/// Brightness blends with black, contrast with the grey of int(mean of convert("L") + 0.5),
/// saturation with convert("L") itself. Saturation and contrast need 3 channels (1-channel
/// images: contrast uses the image itself, saturation is the identity, as PIL).
Image adjust_brightness(const Image& image, double factor);
Image adjust_contrast(const Image& image, double factor);
Image adjust_saturation(const Image& image, double factor);

/// fb.resnet.torch's Lighting on a (3, H, W) float tensor in [0, 1] (after ToTensor, before
/// Normalize), in place: adds eigvec * (alpha * eigval) to each channel. eigval/eigvec are
/// ImageNet's RGB principal components (Krizhevsky et al. 2012, values from fb.resnet.torch).
void apply_lighting(torch::Tensor& chw, const std::array<double, 3>& alpha);

/// ToTensor + Normalize in float32 as torchvision computes them: (x / 255 - mean) / std; mean
/// and std hold one value per channel or one for all. Returns (C, H, W).
torch::Tensor normalize(const Image& image, const Normalization& norm);

}  // namespace densenet::data
