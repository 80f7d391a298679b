// Image decoding and the evaluation transform against PIL and torchvision (tests/reference/
// make_images.py): decoding and resizing must match PIL byte for byte, the normalised input
// torchvision's float32 tensor.

#include "densenet/data/image.h"
#include "densenet/data/image_transform.h"
#include "densenet/io/atomic_file.h"
#include "densenet/io/safetensors.h"
#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <tuple>

namespace densenet {
namespace {

std::string image_dir() {
  return DENSENET_IMAGE_DIR;
}

torch::Tensor as_tensor(const Image& image) {
  return torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                          {image.height, image.width, image.channels}, torch::kUInt8)
      .clone();
}

class PilImages : public ::testing::TestWithParam<std::string> {};

TEST_P(PilImages, DecodeResizeCropAndNormaliseLikeTorchvision) {
  const std::string name = GetParam();
  std::string stem = name;
  stem[stem.find('.')] = '_';
  const TensorFile expected = read_safetensors(image_dir() + "/" + stem + ".safetensors");
  const Image decoded = read_image(image_dir() + "/" + name);
  ASSERT_EQ(decoded.channels, 3);
  EXPECT_TRUE(testing::tensors_identical(name + " decoded", as_tensor(decoded),
                                         expected.tensors["decoded"]));
  EXPECT_TRUE(testing::tensors_identical(name + " resized",
                                         as_tensor(resize_shorter_side(decoded, 256)),
                                         expected.tensors["resized"]));
  EXPECT_TRUE(testing::tensors_identical(name + " cropped", as_tensor(center_crop(decoded, 128)),
                                         expected.tensors["cropped"]));
  EXPECT_TRUE(testing::tensors_identical(name + " input", preprocess_image(decoded, {}),
                                         expected.tensors["input"]));
  ImageTransformOptions luma;
  luma.resize = 32;
  luma.crop = 28;
  luma.mean = {0.5};
  luma.std = {0.25};
  EXPECT_TRUE(testing::tensors_identical(name + " input_luma",
                                         preprocess_image(to_luma(decoded), luma),
                                         expected.tensors["input_luma"]));
}

INSTANTIATE_TEST_SUITE_P(Formats, PilImages,
                         ::testing::Values("rgb.png", "tall.png", "small.png", "gray.png",
                                           "palette.png", "rgba.png", "photo.jpg", "gray.jpg",
                                           "progressive.jpg"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name[name.find('.')] = '_';
                           return name;
                         });

torch::Tensor luma_tensor(const Image& rgb) {
  const Image luma = to_luma(rgb);
  return torch::from_blob(const_cast<uint8_t*>(luma.pixels.data()), {luma.height, luma.width},
                          torch::kUInt8)
      .clone();
}

// decode_image and to_luma against PIL's convert("RGB") and convert("L") of the same file.
void expect_pil_decode(const std::string& file, const std::string& answer) {
  const TensorFile expected = read_safetensors(image_dir() + "/" + answer);
  const Image decoded = read_image(image_dir() + "/" + file);
  ASSERT_EQ(decoded.channels, 3);
  EXPECT_TRUE(
      testing::tensors_identical(file + " RGB", as_tensor(decoded), expected.tensors["rgb"]));
  EXPECT_TRUE(
      testing::tensors_identical(file + " L", luma_tensor(decoded), expected.tensors["luma"]));
}

// Every PNG colour type and bit depth (tests/reference/png_writer.py writes them), with and
// without a tRNS chunk, progressive and Adam7-interlaced.
using PngKind = std::tuple<std::string, bool, bool>;  // kind, tRNS, interlaced
class PngMatrix : public ::testing::TestWithParam<PngKind> {};

std::string png_stem(const PngKind& kind) {
  return "png_" + std::get<0>(kind) + (std::get<1>(kind) ? "_trns" : "") +
         (std::get<2>(kind) ? "_interlaced" : "");
}

TEST_P(PngMatrix, DecodesLikePilConvertRgbAndL) {
  const std::string stem = png_stem(GetParam());
  expect_pil_decode(stem + ".png", stem + ".safetensors");
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, PngMatrix,
    ::testing::Combine(::testing::Values("grey1", "grey2", "grey4", "grey8", "grey16", "greyalpha8",
                                         "greyalpha16", "rgb8", "rgb16", "rgba8", "rgba16",
                                         "palette1", "palette2", "palette4", "palette8"),
                       ::testing::Bool(), ::testing::Bool()),
    [](const auto& info) { return png_stem(info.param); });

// The file: a 16-bit grey PNG whose samples are all 30000. PIL opens it in mode "I" and
// clamps to 255; keeping the high byte gave 117.
TEST(ImageDecoding, SixteenBitGreyClampsLikePil) {
  expect_pil_decode("png_grey16_30000.png", "png_grey16_30000.safetensors");
  const Image decoded = read_image(image_dir() + "/png_grey16_30000.png");
  EXPECT_EQ(as_tensor(decoded).min().item<int>(), 255);
}

// CMYK JPEGs (PIL's own, with an Adobe marker) and YCCK: PIL reads the samples inverted.
class CmykJpegs : public ::testing::TestWithParam<std::string> {};

TEST_P(CmykJpegs, DecodeLikePilConvertRgbAndL) {
  std::string stem = GetParam();
  expect_pil_decode(stem + ".jpg", stem + "_jpg.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Kinds, CmykJpegs, ::testing::Values("cmyk", "cmyk_adobe", "ycck"),
                         [](const auto& info) { return info.param; });

TEST(ImageDecoding, BadFilesGiveOneClearError) {
  const std::string dir = image_dir() + "/";
  EXPECT_ERROR_CONTAINS(read_image(dir + "truncated_photo.jpg"), "as JPEG: Premature end");
  EXPECT_ERROR_CONTAINS(read_image(dir + "truncated_rgb.png"), "as PNG: unexpected end of file");
  EXPECT_ERROR_CONTAINS(read_image(dir + "corrupted.png"), "as PNG:");
  EXPECT_ERROR_CONTAINS(read_image(dir + "image.gif"), "not a JPEG or PNG image");
  EXPECT_ERROR_CONTAINS(read_image(dir + "image.bmp"), "not a JPEG or PNG image");
  EXPECT_ERROR_CONTAINS(read_image(dir + "empty.png"), "the file is empty");
  EXPECT_ERROR_CONTAINS(read_image(dir + "missing.png"), "cannot read");
  // A PNG header claiming 100000 x 100000 pixels is refused before allocating 30 GB.
  std::string bomb(
      "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02"
      "\x00\x00\x00",
      33);
  EXPECT_ERROR_CONTAINS(decode_image(bomb + std::string(4, '\0'), "bomb.png"), "bomb.png");
}

// Every prefix of a valid JPEG and PNG is an error, never a crash or a half-grey image.
TEST(ImageDecoding, EveryTruncationIsAnError) {
  for (const std::string name : {"photo.jpg", "palette.png"}) {
    const std::string bytes = read_file(image_dir() + "/" + name);
    int loaded = 0;
    for (size_t length = 0; length < bytes.size(); length += 7) {
      try {
        decode_image(std::string_view(bytes).substr(0, length), name);
        ++loaded;
      } catch (const c10::Error&) {
      }
    }
    // A PNG cut inside its trailing IEND chunk still holds the whole image; nothing else may load.
    EXPECT_LE(loaded, 2) << name;
  }
}

TEST(ImageTransform, ArgumentsAreChecked) {
  const Image image{4, 4, 3, std::vector<uint8_t>(48, 7)};
  EXPECT_ERROR_CONTAINS(to_normalized_tensor(image, {0.5}, {0.5}),
                        "one value per image channel (3)");
  EXPECT_ERROR_CONTAINS(to_normalized_tensor(image, {0, 0, 0}, {1, 0, 1}), "must be positive");
  EXPECT_ERROR_CONTAINS(resize_bilinear(image, 0, 3), "cannot resize to 0x3");
  EXPECT_ERROR_CONTAINS(center_crop(image, 0), "crop size must be positive");
}

}  // namespace
}  // namespace densenet
