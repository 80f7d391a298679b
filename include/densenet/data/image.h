#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace densenet {

/// An 8-bit image, rows top to bottom, channels interleaved: pixels[(y * width + x) * channels
/// + c]. channels is 3 (RGB) or 1 (luma).
struct Image {
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // (height, width, channels)
};

/// Decodes a JPEG (libjpeg-turbo) or PNG (libpng), recognised by content, to RGB the way
/// PIL's `Image.open(f).convert("RGB")` does (palette and grey expanded, alpha dropped, 16-bit
/// samples reduced to their high byte). Truncated or corrupted data, other formats, CMYK JPEGs
/// and images over 178,956,970 pixels (PIL's decompression-bomb limit) are a c10::Error naming
/// `source`.
Image decode_image(std::string_view bytes, const std::string& source);

Image read_image(const std::string& path);

/// PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
Image to_luma(const Image& rgb);

}  // namespace densenet
