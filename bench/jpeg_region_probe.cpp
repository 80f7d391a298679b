// Does libjpeg-turbo's partial decode (jpeg_crop_scanline + jpeg_skip_scanlines) give the same
// pixels as a full decode, and how much faster is it? Random boxes in each JPEG; the region asked
// of libjpeg is the box grown by MARGIN pixels per side (fancy chroma upsampling reads one row and
// column of context beyond the box). Measured result in docs/BENCHMARKS.md (data loader).
//   g++ -O2 bench/jpeg_region_probe.cpp -o /tmp/jpeg_region_probe -ljpeg
//   MARGIN=16 /tmp/jpeg_region_probe /tmp/densenet-loader-jpegs/train/*/*.JPEG
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// After <cstdio>: libjpeg's header needs FILE and size_t declared.
#include <jpeglib.h>

namespace {

struct Box {
  int top, left, height, width;
};

// The box's RGB pixels (height, width, 3), decoding the whole image or only the grown box.
std::vector<unsigned char> decode(const std::string& bytes, const Box& box, bool region, int margin,
                                  int& width, int& height) {
  jpeg_decompress_struct info;
  jpeg_error_mgr error;
  info.err = jpeg_std_error(&error);
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(&info, TRUE);
  info.out_color_space = JCS_RGB;
  jpeg_start_decompress(&info);
  width = static_cast<int>(info.output_width);
  height = static_cast<int>(info.output_height);
  std::vector<unsigned char> out(static_cast<size_t>(box.height) * box.width * 3);
  JDIMENSION x_offset = 0, columns = info.output_width;
  int last_row = height;
  if (region) {
    const int top = box.top - margin < 0 ? 0 : box.top - margin;
    const int left = box.left - margin < 0 ? 0 : box.left - margin;
    const int right = box.left + box.width + margin > width ? width : box.left + box.width + margin;
    x_offset = static_cast<JDIMENSION>(left);
    columns = static_cast<JDIMENSION>(right - left);
    jpeg_crop_scanline(&info, &x_offset, &columns);  // widened to iMCU boundaries
    if (top > 0) jpeg_skip_scanlines(&info, static_cast<JDIMENSION>(top));
    last_row = box.top + box.height;
  }
  std::vector<unsigned char> row(static_cast<size_t>(columns) * 3);
  while (static_cast<int>(info.output_scanline) < last_row) {
    const int y = static_cast<int>(info.output_scanline);
    unsigned char* rows[1] = {row.data()};
    jpeg_read_scanlines(&info, rows, 1);
    if (y >= box.top && y < box.top + box.height) {
      std::memcpy(&out[static_cast<size_t>(y - box.top) * box.width * 3],
                  &row[static_cast<size_t>(box.left - static_cast<int>(x_offset)) * 3],
                  static_cast<size_t>(box.width) * 3);
    }
  }
  jpeg_abort_decompress(&info);
  jpeg_destroy_decompress(&info);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int margin = std::getenv("MARGIN") ? std::atoi(std::getenv("MARGIN")) : 16;
  std::srand(1);
  int differ = 0, count = 0;
  double full_seconds = 0, region_seconds = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream stream(argv[i], std::ios::binary);
    std::stringstream contents;
    contents << stream.rdbuf();
    const std::string bytes = contents.str();
    int width = 0, height = 0;
    decode(bytes, {0, 0, 1, 1}, false, 0, width, height);
    for (int k = 0; k < 5; ++k) {
      Box box{0, 0, 1 + std::rand() % height, 1 + std::rand() % width};
      box.top = std::rand() % (height - box.height + 1);
      box.left = std::rand() % (width - box.width + 1);
      const auto t0 = std::chrono::steady_clock::now();
      const auto full = decode(bytes, box, false, margin, width, height);
      const auto t1 = std::chrono::steady_clock::now();
      const auto part = decode(bytes, box, true, margin, width, height);
      const auto t2 = std::chrono::steady_clock::now();
      full_seconds += std::chrono::duration<double>(t1 - t0).count();
      region_seconds += std::chrono::duration<double>(t2 - t1).count();
      ++count;
      if (full != part) ++differ;
    }
  }
  std::printf(
      "margin %d: %d region decodes, %d differ from the full decode; full %.2f ms, "
      "region %.2f ms per decode\n",
      margin, count, differ, 1e3 * full_seconds / count, 1e3 * region_seconds / count);
}
