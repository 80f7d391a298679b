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

/// Decodes a JPEG (libjpeg-turbo) or PNG (libpng), recognised by content, to RGB exactly as
/// Pillow 9.4's `Image.open(f).convert("RGB")` does (tests/data/test_image.cpp checks every PNG
/// colour type and bit depth, and CMYK/YCCK JPEGs, byte for byte against it):
/// - grey of 1, 2 and 4 bits is scaled to 0..255; 16-bit grey opens in PIL's mode "I" and is
///   clamped to 255 (a sample of 30000 gives 255, not its high byte 117);
/// - 16-bit grey+alpha, RGB and RGBA samples keep their high byte;
/// - alpha and tRNS are dropped without compositing; palette indices read PLTE (indices past
///   its end read PIL's default grey ramp, i -> (i, i, i));
/// - CMYK and YCCK JPEGs are read as Adobe-inverted CMYK (PIL's "CMYK;I") and converted by
///   Pillow's cmyk2rgb: R = (255 - K) - MULDIV255(C, 255 - K).
/// Truncated or corrupted data, formats other than JPEG and PNG, and images over 178,956,970
/// pixels (PIL's decompression-bomb limit) are a c10::Error naming `source`.
Image decode_image(std::string_view bytes, const std::string& source);

Image read_image(const std::string& path);

/// What decode_image cannot read, in one paragraph for `--help` texts and docs.
const char* image_format_limits();

/// PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (Convert.c's L24). For
/// every file decode_image reads, to_luma(decode_image(f)) equals PIL's convert("L") of f.
Image to_luma(const Image& rgb);

}  // namespace densenet
