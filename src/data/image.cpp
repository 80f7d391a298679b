#include "densenet/data/image.h"

#include "densenet/io/atomic_file.h"

#include "data/jpeg_error.h"

#include <c10/util/Exception.h>

// libjpeg's header needs stdio's FILE declared first.
#include <algorithm>
#include <array>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include <jpeglib.h>
// jerror.h after jpeglib.h: it needs its types.
#include <jerror.h>
#include <png.h>

namespace densenet {

namespace {

constexpr int64_t kMaxPixels = 178956970;  // PIL's Image.MAX_IMAGE_PIXELS * 2: an error there

void check_dimensions(int64_t width, int64_t height, const std::string& source) {
  TORCH_CHECK(width > 0 && height > 0, "cannot decode '", source, "': the image is empty (", width,
              "x", height, ")");
  TORCH_CHECK(width <= kMaxPixels / height, "cannot decode '", source, "': ", width, "x", height,
              " pixels exceeds the limit of ", kMaxPixels,
              " (a decompression bomb, or an image to downscale first)");
}

using detail::jpeg_fail;
using detail::jpeg_message;
using detail::JpegError;

// Pillow 9.4's CMYK JPEG to RGB: JpegImagePlugin always reads the samples as inverted
// ("CMYK;I", Adobe's convention, which is what Photoshop and most CMYK JPEGs use), and Convert.c's
// cmyk2rgb then computes R = (255 - K) - (255 - K) * C / 255 with its MULDIV255 rounding. With
// the inversion undone, 255 - K is the stored k and C is 255 - the stored c.
void cmyk_row_to_rgb(const uint8_t* row, int64_t width, uint8_t* out) {
  const auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (int64_t x = 0; x < width; ++x) {
    const uint8_t* stored = row + x * 4;
    const int not_black = stored[3];
    for (int c = 0; c < 3; ++c) {
      const int value = not_black - muldiv255(255 - stored[c], not_black);
      out[x * 3 + c] = static_cast<uint8_t>(std::clamp(value, 0, 255));
    }
  }
}

Image decode_jpeg(std::string_view bytes, const std::string& source) {
  // Not modified between setjmp and longjmp, so it is safe to use after the jump.
  const auto image = std::make_unique<Image>();
  const auto row = std::make_unique<std::vector<unsigned char>>();
  jpeg_decompress_struct info;
  JpegError error;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = jpeg_fail;
  error.manager.emit_message = jpeg_message;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&info);
    TORCH_CHECK(false, "cannot decode '", source, "' as JPEG: ", error.message);
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  // libjpeg turns YCCK into CMYK; everything else that is not grey becomes RGB.
  const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = info.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE
                         : cmyk                                 ? JCS_CMYK
                                                                : JCS_RGB;
  jpeg_start_decompress(&info);
  const int64_t width = info.output_width;
  const int64_t height = info.output_height;
  const int64_t components = info.output_components;
  if (width <= 0 || height <= 0 || width > kMaxPixels / height) {
    jpeg_destroy_decompress(&info);
    check_dimensions(width, height, source);
  }
  image->width = width;
  image->height = height;
  image->channels = 3;
  image->pixels.resize(static_cast<size_t>(width * height * 3));
  row->resize(static_cast<size_t>(width * components));
  while (info.output_scanline < info.output_height) {
    const int64_t y = info.output_scanline;
    unsigned char* rows[1] = {row->data()};
    jpeg_read_scanlines(&info, rows, 1);
    uint8_t* out = image->pixels.data() + y * width * 3;
    if (cmyk) {
      cmyk_row_to_rgb(row->data(), width, out);
      continue;
    }
    for (int64_t x = 0; x < width; ++x) {
      for (int64_t c = 0; c < 3; ++c)
        out[x * 3 + c] = (*row)[x * components + (components == 3 ? c : 0)];
    }
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return std::move(*image);
}

struct PngSource {
  std::string_view bytes;
  size_t position = 0;
  char message[256] = {0};
};

void png_fail(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof(source->message), "%s", message);
  png_longjmp(png, 1);
}

void png_warn(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (count > source->bytes.size() - source->position) {
    png_error(png, "unexpected end of file; the image is truncated");
  }
  std::memcpy(out, source->bytes.data() + source->position, count);
  source->position += count;
}

// One sample of a raw libpng row (no transformations): 1, 2 and 4-bit samples are packed from the
// high bit, 16-bit ones big-endian (PNG specification, section 7.2).
uint32_t raw_sample(const uint8_t* row, int64_t index, int depth) {
  if (depth == 16) return (uint32_t{row[2 * index]} << 8) | row[2 * index + 1];
  if (depth == 8) return row[index];
  const int64_t per_byte = 8 / depth;
  const int shift = 8 - depth * static_cast<int>(index % per_byte + 1);
  return (row[index / per_byte] >> shift) & ((1u << depth) - 1);
}

// Pillow 9.4's rules for each PNG kind (PngImagePlugin's _MODES, its unpackers and Convert.c),
// checked against Image.convert("RGB") for every colour type and bit depth
// (tests/reference/make_images.py): grey below 8 bits is scaled to 0..255 ("1", "L;2", "L;4");
// 16-bit grey opens in mode "I" and converts by clamping to 255, not by keeping the high byte;
// every other 16-bit sample ("LA;16B", "RGB;16B", "RGBA;16B") keeps its high byte; alpha and
// tRNS are ignored; palette indices past the PLTE entries read Pillow's default grey ramp.
void png_row_to_rgb(const uint8_t* row, int64_t width, int color, int depth,
                    const std::array<std::array<uint8_t, 3>, 256>& palette, uint8_t* out) {
  const int channels = color == PNG_COLOR_TYPE_GRAY         ? 1
                       : color == PNG_COLOR_TYPE_PALETTE    ? 1
                       : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                       : color == PNG_COLOR_TYPE_RGB        ? 3
                                                            : 4;
  const auto eight_bit = [&](uint32_t sample) {
    return static_cast<uint8_t>(depth == 16 ? sample >> 8 : sample);
  };
  for (int64_t x = 0; x < width; ++x) {
    uint8_t* pixel = out + x * 3;
    const uint32_t first = raw_sample(row, x * channels, depth);
    if (color == PNG_COLOR_TYPE_PALETTE) {
      std::memcpy(pixel, palette[first].data(), 3);
    } else if (color == PNG_COLOR_TYPE_GRAY) {
      const uint8_t grey = depth < 8     ? static_cast<uint8_t>(first * 255 / ((1u << depth) - 1))
                           : depth == 16 ? static_cast<uint8_t>(std::min<uint32_t>(first, 255))
                                         : static_cast<uint8_t>(first);
      pixel[0] = pixel[1] = pixel[2] = grey;
    } else if (color == PNG_COLOR_TYPE_GRAY_ALPHA) {
      pixel[0] = pixel[1] = pixel[2] = eight_bit(first);
    } else {
      pixel[0] = eight_bit(first);
      pixel[1] = eight_bit(raw_sample(row, x * channels + 1, depth));
      pixel[2] = eight_bit(raw_sample(row, x * channels + 2, depth));
    }
  }
}

Image decode_png(std::string_view bytes, const std::string& source_name) {
  const auto image = std::make_unique<Image>();
  const auto source = std::make_unique<PngSource>();
  source->bytes = bytes;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, source.get(), png_fail, png_warn);
  TORCH_CHECK(png != nullptr, "cannot decode '", source_name, "': out of memory");
  png_infop info = png_create_info_struct(png);
  // Row pointers live outside the jump's reach: a unique_ptr set before setjmp.
  const auto rows = std::make_unique<std::vector<png_bytep>>();
  const auto raw = std::make_unique<std::vector<uint8_t>>();  // (height, row bytes): as stored
  const auto palette_holder = std::make_unique<std::array<std::array<uint8_t, 3>, 256>>();
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    TORCH_CHECK(false, "cannot decode '", source_name, "' as PNG: ", source->message);
  }
  if (info == nullptr) png_error(png, "out of memory");
  png_set_read_fn(png, source.get(), png_read_memory);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);
  const int64_t width = png_get_image_width(png, info);
  const int64_t height = png_get_image_height(png, info);
  if (width <= 0 || height <= 0 || width > kMaxPixels / height) {
    png_destroy_read_struct(&png, &info, nullptr);
    check_dimensions(width, height, source_name);
  }
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  // Pillow's palette starts as a grey ramp that PLTE overwrites (see png_row_to_rgb).
  auto& palette = *palette_holder;
  for (int i = 0; i < 256; ++i) palette[i] = {uint8_t(i), uint8_t(i), uint8_t(i)};
  if (color == PNG_COLOR_TYPE_PALETTE) {
    png_colorp entries = nullptr;
    int count = 0;
    if (png_get_PLTE(png, info, &entries, &count) == 0)
      png_error(png, "a palette image without PLTE");
    for (int i = 0; i < count && i < 256; ++i) {
      palette[i] = {entries[i].red, entries[i].green, entries[i].blue};
    }
  }
  // libpng only decompresses, unfilters and de-interlaces; the samples are converted here,
  // because libpng's own transformations do not follow Pillow (16-bit grey, tRNS).
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_size_t row_bytes = png_get_rowbytes(png, info);
  image->width = width;
  image->height = height;
  image->channels = 3;
  image->pixels.resize(static_cast<size_t>(width * height * 3));
  raw->resize(row_bytes * static_cast<size_t>(height));
  rows->resize(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) (*rows)[y] = raw->data() + y * row_bytes;
  png_read_image(png, rows->data());
  for (int64_t y = 0; y < height; ++y) {
    png_row_to_rgb((*rows)[y], width, color, depth, palette, image->pixels.data() + y * width * 3);
  }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return std::move(*image);
}

}  // namespace

Image decode_image(std::string_view bytes, const std::string& source) {
  TORCH_CHECK(!bytes.empty(), "cannot decode '", source, "': the file is empty");
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8 &&
      static_cast<unsigned char>(bytes[2]) == 0xFF) {
    return decode_jpeg(bytes, source);
  }
  if (bytes.size() >= 8 && bytes.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) {
    return decode_png(bytes, source);
  }
  TORCH_CHECK(false, "cannot decode '", source,
              "': not a JPEG or PNG image (the only formats supported)");
}

Image read_image(const std::string& path) {
  return decode_image(read_file(path), path);
}

const char* image_format_limits() {
  return "Images: JPEG (grey, RGB/YCbCr, CMYK, YCCK) and PNG (every colour type and bit depth, "
         "interlaced or not), decoded as PIL's convert(\"RGB\"); alpha and transparency are "
         "dropped, 16-bit samples reduced as PIL does. Other formats (GIF, BMP, TIFF, WebP, ...), "
         "truncated files and images over 178,956,970 pixels are refused.";
}

Image to_luma(const Image& rgb) {
  TORCH_INTERNAL_ASSERT(rgb.channels == 3);
  Image luma{rgb.width, rgb.height, 1, std::vector<uint8_t>(rgb.pixels.size() / 3)};
  for (size_t i = 0; i < luma.pixels.size(); ++i) {
    const uint32_t r = rgb.pixels[i * 3], g = rgb.pixels[i * 3 + 1], b = rgb.pixels[i * 3 + 2];
    luma.pixels[i] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
  }
  return luma;
}

}  // namespace densenet
