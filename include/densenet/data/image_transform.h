#pragma once

#include "densenet/data/image.h"

#include <torch/types.h>

#include <vector>

namespace densenet {

/// torchvision's evaluation transform for ImageNet models, step by step, bit-compatible with
/// torchvision on PIL images: Resize(resize) (shorter side, bilinear), CenterCrop(crop),
/// ToTensor, Normalize(mean, std). A size of 0 skips that step.
struct ImageTransformOptions {
  int64_t resize = 256;
  int64_t crop = 224;
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
};

/// PIL's Image.resize((width, height), BILINEAR): a triangle filter widened by the scale factor
/// when shrinking (antialiased), separable, horizontal pass first, 22-bit fixed-point
/// weights, rounding to 8 bits after each pass.
Image resize_bilinear(const Image& image, int64_t width, int64_t height);

/// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer one
/// int(size * long / short).
Image resize_shorter_side(const Image& image, int64_t size);

/// torchvision's CenterCrop(size): offsets int(round((H - size) / 2)) (round half to even, as
/// Python's round), zero padding first when the image is smaller.
Image center_crop(const Image& image, int64_t size);

/// ToTensor and Normalize, in float32 as torchvision computes them: (x / 255 - mean) / std.
/// Returns (channels, height, width).
torch::Tensor to_normalized_tensor(const Image& image, const std::vector<double>& mean,
                                   const std::vector<double>& std);

/// The whole transform.
torch::Tensor preprocess_image(const Image& image, const ImageTransformOptions& options);

}  // namespace densenet
