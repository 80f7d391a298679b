#include "densenet/data/image_transform.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace densenet {

namespace {

// Pillow's Resample.c, 8 bits per channel.
constexpr int kPrecisionBits = 32 - 8 - 2;

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

uint8_t clip8(int64_t value) {
  if (value >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (value <= 0) return 0;
  return static_cast<uint8_t>(value >> kPrecisionBits);
}

struct Coefficients {
  int64_t taps = 0;              // per output position
  std::vector<int64_t> first;    // first input index per output position
  std::vector<int64_t> count;    // inputs used per output position
  std::vector<int32_t> weights;  // (out_size, taps), fixed point
};

Coefficients precompute(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;  // bilinear's support is 1
  Coefficients c;
  c.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.weights.assign(static_cast<size_t>(out_size * c.taps), 0);
  std::vector<double> k(static_cast<size_t>(c.taps));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    const double inverse = 1.0 / filter_scale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      k[x] = triangle((static_cast<double>(x + xmin) - center + 0.5) * inverse);
      total += k[x];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      if (total != 0.0) k[x] /= total;
      const double fixed = k[x] * static_cast<double>(1 << kPrecisionBits);
      c.weights[xx * c.taps + x] = static_cast<int32_t>(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

}  // namespace

namespace {

// The two passes with 32-bit accumulators, as Pillow's ImagingResampleHorizontal_8bpc /
// ImagingResampleVertical_8bpc: the weights of one output sum to 2^22, so a sum stays below
// 2^21 + 255 * (2^22 + taps) < 2^31. Same arithmetic as 64-bit sums, about twice as fast,
// and the vertical pass runs along rows so that the compiler vectorises it.
template <int64_t kChannels>
void horizontal_pass(const uint8_t* in, int64_t in_width, int64_t rows, int64_t channels,
                     const Coefficients& c, int64_t width, uint8_t* out) {
  const int64_t ch = kChannels > 0 ? kChannels : channels;
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* row = in + y * in_width * ch;
    uint8_t* out_row = out + y * width * ch;
    for (int64_t xx = 0; xx < width; ++xx) {
      const int32_t* k = c.weights.data() + xx * c.taps;
      const uint8_t* first = row + c.first[xx] * ch;
      const int64_t count = c.count[xx];
      for (int64_t channel = 0; channel < ch; ++channel) {
        int32_t sum = int32_t{1} << (kPrecisionBits - 1);
        for (int64_t x = 0; x < count; ++x)
          sum += static_cast<int32_t>(first[x * ch + channel]) * k[x];
        out_row[xx * ch + channel] = clip8(sum);
      }
    }
  }
}

}  // namespace

Image resize_bilinear(const Image& image, int64_t width, int64_t height) {
  TORCH_CHECK(width > 0 && height > 0, "cannot resize to ", width, "x", height);
  const int64_t channels = image.channels;
  Image horizontal;
  const Image* current = &image;
  if (width != image.width) {
    const Coefficients c = precompute(image.width, width);
    horizontal = Image{width, image.height, channels,
                       std::vector<uint8_t>(static_cast<size_t>(width * image.height * channels))};
    if (channels == 3) {
      horizontal_pass<3>(image.pixels.data(), image.width, image.height, 3, c, width,
                         horizontal.pixels.data());
    } else if (channels == 1) {
      horizontal_pass<1>(image.pixels.data(), image.width, image.height, 1, c, width,
                         horizontal.pixels.data());
    } else {
      horizontal_pass<0>(image.pixels.data(), image.width, image.height, channels, c, width,
                         horizontal.pixels.data());
    }
    current = &horizontal;
  }
  if (height == image.height) return current == &image ? image : horizontal;
  const Coefficients c = precompute(image.height, height);
  Image out{width, height, channels,
            std::vector<uint8_t>(static_cast<size_t>(width * height * channels))};
  const int64_t row_size = width * channels;
  std::vector<int32_t> sums(static_cast<size_t>(row_size));
  for (int64_t yy = 0; yy < height; ++yy) {
    const int32_t* k = c.weights.data() + yy * c.taps;
    std::fill(sums.begin(), sums.end(), int32_t{1} << (kPrecisionBits - 1));
    for (int64_t y = 0; y < c.count[yy]; ++y) {
      const uint8_t* row = current->pixels.data() + (y + c.first[yy]) * row_size;
      const int32_t weight = k[y];
      for (int64_t x = 0; x < row_size; ++x) sums[x] += static_cast<int32_t>(row[x]) * weight;
    }
    uint8_t* out_row = out.pixels.data() + yy * row_size;
    for (int64_t x = 0; x < row_size; ++x) out_row[x] = clip8(sums[x]);
  }
  return out;
}

Image resize_shorter_side(const Image& image, int64_t size) {
  TORCH_CHECK(size > 0, "resize size must be positive, got ", size);
  const bool wide = image.width >= image.height;
  const int64_t shorter = wide ? image.height : image.width;
  const int64_t longer = wide ? image.width : image.height;
  // Python: int(size * long / short), a float division truncated.
  const auto new_longer = static_cast<int64_t>(
      static_cast<double>(size) * static_cast<double>(longer) / static_cast<double>(shorter));
  const int64_t width = wide ? new_longer : size;
  const int64_t height = wide ? size : new_longer;
  if (width == image.width && height == image.height) return image;
  return resize_bilinear(image, width, height);
}

Image center_crop(const Image& image, int64_t size) {
  TORCH_CHECK(size > 0, "crop size must be positive, got ", size);
  Image source = image;
  if (size > image.width || size > image.height) {
    const int64_t left = size > image.width ? (size - image.width) / 2 : 0;
    const int64_t top = size > image.height ? (size - image.height) / 2 : 0;
    const int64_t width = std::max(size, image.width);
    const int64_t height = std::max(size, image.height);
    Image padded{width, height, image.channels,
                 std::vector<uint8_t>(static_cast<size_t>(width * height * image.channels), 0)};
    for (int64_t y = 0; y < image.height; ++y) {
      std::copy_n(image.pixels.data() + y * image.width * image.channels,
                  image.width * image.channels,
                  padded.pixels.data() + ((y + top) * width + left) * image.channels);
    }
    source = std::move(padded);
  }
  const auto top = static_cast<int64_t>(std::nearbyint((source.height - size) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint((source.width - size) / 2.0));
  Image out{size, size, source.channels,
            std::vector<uint8_t>(static_cast<size_t>(size * size * source.channels))};
  for (int64_t y = 0; y < size; ++y) {
    std::copy_n(source.pixels.data() + ((y + top) * source.width + left) * source.channels,
                size * source.channels, out.pixels.data() + y * size * source.channels);
  }
  return out;
}

torch::Tensor to_normalized_tensor(const Image& image, const std::vector<double>& mean,
                                   const std::vector<double>& std) {
  const int64_t channels = image.channels;
  TORCH_CHECK(
      static_cast<int64_t>(mean.size()) == channels && static_cast<int64_t>(std.size()) == channels,
      "mean and std need one value per image channel (", channels, "), got ", mean.size(), " and ",
      std.size());
  for (const double s : std) TORCH_CHECK(s > 0, "std values must be positive, got ", s);
  torch::Tensor tensor = torch::empty({channels, image.height, image.width}, torch::kFloat32);
  float* out = tensor.data_ptr<float>();
  const int64_t plane = image.height * image.width;
  for (int64_t c = 0; c < channels; ++c) {
    const auto m = static_cast<float>(mean[c]);
    const auto s = static_cast<float>(std[c]);
    for (int64_t i = 0; i < plane; ++i) {
      const float value = static_cast<float>(image.pixels[i * channels + c]) / 255.0f;
      out[c * plane + i] = (value - m) / s;
    }
  }
  return tensor;
}

torch::Tensor preprocess_image(const Image& image, const ImageTransformOptions& options) {
  Image current = image;
  if (options.resize > 0) current = resize_shorter_side(current, options.resize);
  if (options.crop > 0) current = center_crop(current, options.crop);
  return to_normalized_tensor(current, options.mean, options.std);
}

}  // namespace densenet
