#include "densenet/data/image.h"

#include "densenet/io/atomic_file.h"

#include <c10/util/Exception.h>

// libjpeg's header needs stdio's FILE declared first.
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

struct JpegError {
  jpeg_error_mgr manager;  // first, so that the library's pointer is also ours
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr info) {
  auto* error = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, error->message);
  std::longjmp(error->jump, 1);
}

// libjpeg reports a truncated stream as a warning and fills the rest with grey; PIL refuses
// such files ("image file is truncated"), and so does this.
void jpeg_message(j_common_ptr info, int level) {
  if (level < 0 &&
      (info->err->msg_code == JWRN_JPEG_EOF || info->err->msg_code == JWRN_HIT_MARKER)) {
    jpeg_fail(info);
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
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&info);
    TORCH_CHECK(false, "cannot decode '", source,
                "': CMYK JPEGs are not supported; convert the image to RGB");
  }
  info.out_color_space = info.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
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

Image decode_png(std::string_view bytes, const std::string& source_name) {
  const auto image = std::make_unique<Image>();
  const auto source = std::make_unique<PngSource>();
  source->bytes = bytes;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, source.get(), png_fail, png_warn);
  TORCH_CHECK(png != nullptr, "cannot decode '", source_name, "': out of memory");
  png_infop info = png_create_info_struct(png);
  // Row pointers live outside the jump's reach: a unique_ptr set before setjmp.
  const auto rows = std::make_unique<std::vector<png_bytep>>();
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
  // As PIL's convert("RGB"): expand palette and grey, keep the high byte of 16-bit samples,
  // drop alpha without compositing.
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 ||
      png_get_rowbytes(png, info) != static_cast<png_size_t>(width * 3)) {
    png_error(png, "unsupported pixel layout after conversion to RGB");
  }
  image->width = width;
  image->height = height;
  image->channels = 3;
  image->pixels.resize(static_cast<size_t>(width * height * 3));
  rows->resize(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) (*rows)[y] = image->pixels.data() + y * width * 3;
  png_read_image(png, rows->data());
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
