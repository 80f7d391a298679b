#include "data/jpeg_region.h"

#include "data/jpeg_error.h"

#include <c10/util/Exception.h>

// libjpeg's header needs stdio's FILE declared first.
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <jpeglib.h>
// jerror.h after jpeglib.h: it needs its types.
#include <jerror.h>

namespace densenet::data {

namespace {

constexpr int64_t kContext = 8;  // pixels of context around the box, see the header

using detail::jpeg_fail;
using detail::jpeg_message;
using detail::JpegError;

}  // namespace

std::optional<Image> decode_jpeg_box(std::string_view bytes, const std::string& source,
                                     const std::function<CropBox(int64_t, int64_t)>& choose) {
  if (bytes.size() < 3 || static_cast<unsigned char>(bytes[0]) != 0xFF ||
      static_cast<unsigned char>(bytes[1]) != 0xD8) {
    return std::nullopt;
  }
  // Not modified between setjmp and longjmp (heap objects), so safe to use after the jump.
  const auto out = std::make_unique<Image>();
  const auto row = std::make_unique<std::vector<unsigned char>>();
  const auto box = std::make_unique<CropBox>();
  const auto whole = std::make_unique<bool>(false);
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
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK ||
      info.image_width == 0 || info.image_height == 0 ||
      static_cast<int64_t>(info.image_width) * info.image_height > 178956970) {
    *whole = true;  // decode_image handles (and reports) these
  } else {
    info.out_color_space = JCS_RGB;  // grey expands to R = G = B, as PIL's convert("RGB")
    // No longjmp can happen while choose() runs: it is plain C++ between libjpeg calls.
    *box = choose(info.image_height, info.image_width);
    if (box->top < 0 || box->left < 0 || box->height < 1 || box->width < 1 ||
        box->top + box->height > static_cast<int64_t>(info.image_height) ||
        box->left + box->width > static_cast<int64_t>(info.image_width)) {
      jpeg_destroy_decompress(&info);
      TORCH_CHECK(false, "crop box (top ", box->top, ", left ", box->left, ", ", box->height, "x",
                  box->width, ") is outside the ", info.image_height, "x", info.image_width,
                  " image '", source, "'");
    }
    jpeg_start_decompress(&info);
    const auto width = static_cast<int64_t>(info.output_width);
    const int64_t top = std::max<int64_t>(0, box->top - kContext);
    const int64_t left = std::max<int64_t>(0, box->left - kContext);
    const int64_t right = std::min<int64_t>(width, box->left + box->width + kContext);
    auto x_offset = static_cast<JDIMENSION>(left);
    auto columns = static_cast<JDIMENSION>(right - left);
    jpeg_crop_scanline(&info, &x_offset, &columns);  // widened to iMCU boundaries
    if (top > 0) jpeg_skip_scanlines(&info, static_cast<JDIMENSION>(top));
    *out = Image{box->width, box->height, 3,
                 std::vector<uint8_t>(static_cast<size_t>(box->width * box->height * 3))};
    row->resize(static_cast<size_t>(columns) * 3);
    const int64_t skip = (box->left - static_cast<int64_t>(x_offset)) * 3;
    while (static_cast<int64_t>(info.output_scanline) < box->top + box->height) {
      const auto y = static_cast<int64_t>(info.output_scanline);
      unsigned char* rows[1] = {row->data()};
      jpeg_read_scanlines(&info, rows, 1);
      if (y >= box->top) {
        std::memcpy(out->pixels.data() + (y - box->top) * box->width * 3, row->data() + skip,
                    static_cast<size_t>(box->width) * 3);
      }
    }
    jpeg_abort_decompress(&info);
  }
  jpeg_destroy_decompress(&info);
  if (*whole) return std::nullopt;
  return std::move(*out);
}

}  // namespace densenet::data
