// Transforms against torchvision (tests/reference/make_data.py) for fixed crop boxes, flips,
// jitter factors and lighting alphas: pixels bit for bit, normalised tensors bit for bit; and
// the random parameters' ranges and determinism.

#include "data/data_dir.h"
#include "densenet/data/transforms.h"
#include "densenet/io/safetensors.h"
#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace densenet::data {
namespace {

using densenet::testing::tensors_identical;

torch::Tensor ref(const std::string& name) {
  static const TensorFile file =
      read_safetensors(densenet::testing::data_dir() + "/transforms.safetensors");
  const auto found = file.tensors.find(name);
  TORCH_CHECK(found != nullptr, "transforms.safetensors lacks ", name);
  return *found;
}

const Normalization kFashion{{0.2860}, {0.3530}};

TEST(Transforms, PadCropFlipMatchesTorchvision) {
  const Image gray = to_image(ref("gray"));
  const Image rgb = to_image(ref("rgb32"));
  const Normalization cifar10 = default_normalization("cifar10");
  EXPECT_TRUE(tensors_identical("gray 1,7 flip",
                                normalize(pad_crop_flip(gray, 4, {1, 7, 28, 28}, true), kFashion),
                                ref("gray_padcrop_1_7_flip")));
  EXPECT_TRUE(tensors_identical("gray 8,0",
                                normalize(pad_crop_flip(gray, 4, {8, 0, 28, 28}, false), kFashion),
                                ref("gray_padcrop_8_0")));
  EXPECT_TRUE(tensors_identical("rgb 0,8",
                                normalize(pad_crop_flip(rgb, 4, {0, 8, 32, 32}, false), cifar10),
                                ref("rgb32_padcrop_0_8")));
  EXPECT_TRUE(tensors_identical("rgb 8,3 flip",
                                normalize(pad_crop_flip(rgb, 4, {8, 3, 32, 32}, true), cifar10),
                                ref("rgb32_padcrop_8_3_flip")));
}

// crop-padding 0 is RandomCrop without padding: the whole image, only flipped or not; hflip is
// RandomHorizontalFlip(p): 0 never flips, 1 always does.
TEST(Transforms, CropPaddingAndFlipProbabilityAreHonoured) {
  const torch::Tensor gray = ref("gray");
  const Image image = to_image(gray);
  const torch::Tensor plain = normalize(pad_crop_flip(image, 0, {0, 0, 28, 28}, false), kFashion);
  const torch::Tensor mirrored = normalize(pad_crop_flip(image, 0, {0, 0, 28, 28}, true), kFashion);
  const auto count = [&](double hflip, int64_t padding) {
    AugmentOptions augment;
    augment.crop_padding = padding;
    augment.hflip = hflip;
    const auto transform = make_train_transform("fashion-mnist", 28, kFashion, augment);
    int64_t flipped = 0, other = 0;
    for (uint64_t index = 0; index < 200; ++index) {
      Rng rng(7, index);
      const torch::Tensor out = transform->apply(gray, rng);
      if (torch::equal(out, mirrored)) {
        ++flipped;
      } else if (!torch::equal(out, plain)) {
        ++other;
      }
    }
    return std::make_pair(flipped, other);
  };
  EXPECT_EQ(count(0.0, 0), (std::pair<int64_t, int64_t>(0, 0)));
  EXPECT_EQ(count(1.0, 0), (std::pair<int64_t, int64_t>(200, 0)));
  const auto half = count(0.5, 0);
  EXPECT_GT(half.first, 60);
  EXPECT_LT(half.first, 140);
  EXPECT_EQ(half.second, 0);
  EXPECT_GT(count(0.0, 4).second, 150);  // shifted crops
  AugmentOptions bad;
  bad.hflip = 2;
  EXPECT_ERROR_CONTAINS(make_train_transform("cifar10", 32, kFashion, bad),
                        "flip probability must be in [0, 1], got 2");
  bad.hflip = 0.5;
  bad.crop_padding = 40;
  EXPECT_ERROR_CONTAINS(make_train_transform("mnist", 28, kFashion, bad),
                        "crop padding must be in [0, 28] for 28x28 images, got 40");
}

TEST(Transforms, ResizedCropMatchesTorchvision) {
  const Image photo = to_image(ref("photo"));
  const auto check = [&](const std::string& name, CropBox box, int64_t size, bool flip) {
    EXPECT_TRUE(
        tensors_identical(name, to_tensor(resized_crop_flip(photo, box, size, flip)), ref(name)));
  };
  check("photo_rrc_10_20_100_80_64_flip", {10, 20, 100, 80}, 64, true);
  check("photo_rrc_0_0_150_200_224", {0, 0, 150, 200}, 224, false);
  check("photo_rrc_37_101_13_17_32", {37, 101, 13, 17}, 32, false);
  EXPECT_ERROR_CONTAINS(resized_crop_flip(photo, {100, 0, 60, 10}, 32, false),
                        "is outside the 150x200 image");
}

TEST(Transforms, ColorJitterStepsMatchPil) {
  const Image photo = to_image(ref("photo"));
  EXPECT_TRUE(tensors_identical("brightness 0.6", to_tensor(adjust_brightness(photo, 0.6)),
                                ref("photo_brightness_0p6")));
  EXPECT_TRUE(tensors_identical("brightness 1.3", to_tensor(adjust_brightness(photo, 1.3)),
                                ref("photo_brightness_1p3")));
  EXPECT_TRUE(tensors_identical("contrast 0.5", to_tensor(adjust_contrast(photo, 0.5)),
                                ref("photo_contrast_0p5")));
  EXPECT_TRUE(tensors_identical("contrast 1.4", to_tensor(adjust_contrast(photo, 1.4)),
                                ref("photo_contrast_1p4")));
  EXPECT_TRUE(tensors_identical("saturation 0.2", to_tensor(adjust_saturation(photo, 0.2)),
                                ref("photo_saturation_0p2")));
  EXPECT_TRUE(tensors_identical("saturation 1.7", to_tensor(adjust_saturation(photo, 1.7)),
                                ref("photo_saturation_1p7")));
}

TEST(Transforms, LightingMatchesFbResnet) {
  torch::Tensor chw = normalize(to_image(ref("photo")), {{0.0}, {1.0}});  // ToTensor
  apply_lighting(chw, {0.05, -0.1, 0.02});
  // float32 additions of the same float32 shift: identical.
  EXPECT_TRUE(tensors_identical("lighting", chw, ref("photo_lighting")));
}

TEST(Transforms, EvalTransformsMatchTorchvision) {
  Rng rng(0);
  const auto imagenet =
      make_eval_transform("imagefolder", 64, default_normalization("imagefolder"));
  EXPECT_TRUE(tensors_identical("imagefolder eval", imagenet->apply(ref("photo"), rng),
                                ref("photo_eval_64")));
  const auto cifar = make_eval_transform("cifar10", 32, default_normalization("cifar10"));
  EXPECT_TRUE(tensors_identical("cifar eval", cifar->apply(ref("rgb32"), rng), ref("rgb32_eval")));
}

TEST(Transforms, RandomCropBoxesCoverTheirRange) {
  Rng rng(3);
  std::set<int64_t> tops, lefts;
  for (int i = 0; i < 2000; ++i) {
    const CropBox box = random_crop_box(28, 28, 4, 28, rng);
    tops.insert(box.top);
    lefts.insert(box.left);
  }
  // torchvision: randint(0, 28 + 8 - 28 + 1) -> 0..8 inclusive.
  EXPECT_EQ(tops.size(), 9u);
  EXPECT_EQ(*tops.rbegin(), 8);
  EXPECT_EQ(lefts.size(), 9u);
  EXPECT_ERROR_CONTAINS(random_crop_box(28, 28, 4, 40, rng), "use an input size of at most 36");
}

TEST(Transforms, RandomResizedCropBoxesFollowTorchvision) {
  Rng rng(5);
  double smallest = 1.0, largest = 0.0;
  for (int i = 0; i < 3000; ++i) {
    const CropBox b = random_resized_crop_box(375, 500, rng);
    ASSERT_TRUE(b.top >= 0 && b.left >= 0 && b.top + b.height <= 375 && b.left + b.width <= 500);
    const double area = static_cast<double>(b.height * b.width) / (375.0 * 500.0);
    smallest = std::min(smallest, area);
    largest = std::max(largest, area);
    const double ratio = static_cast<double>(b.width) / static_cast<double>(b.height);
    // Rounding w and h moves the ratio a little outside [3/4, 4/3] for small boxes.
    EXPECT_GT(ratio, 0.70);
    EXPECT_LT(ratio, 1.40);
  }
  EXPECT_LT(smallest, 0.10);  // scale (0.08, 1)
  EXPECT_GT(largest, 0.90);
  // A 1x100 strip never fits a sampled box: the fallback is the centre crop with the ratio
  // clamped to 4/3, w = round(1 * 4/3) = 1, at column (100 - 1) / 2 = 49.
  const CropBox strip = random_resized_crop_box(1, 100, rng);
  EXPECT_EQ(strip.top, 0);
  EXPECT_EQ(strip.height, 1);
  EXPECT_EQ(strip.width, 1);
  EXPECT_EQ(strip.left, 49);
  const CropBox tall = random_resized_crop_box(300, 10, rng);  // ratio < 3/4: h = round(10 / 0.75)
  EXPECT_EQ(tall.width, 10);
  EXPECT_EQ(tall.height, 13);
  EXPECT_EQ(tall.top, (300 - 13) / 2);
}

TEST(Transforms, TrainTransformsAreDeterministicPerRngAndVary) {
  const auto t = make_train_transform("imagefolder", 64, default_normalization("imagefolder"),
                                      {0.4, 0.4, 0.4, 0.1});
  const torch::Tensor photo = ref("photo");
  Rng a = Rng::for_sample(1, 2, 3), b = Rng::for_sample(1, 2, 3), c = Rng::for_sample(1, 2, 4);
  const torch::Tensor x = t->apply(photo, a);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{3, 64, 64}));
  EXPECT_TRUE(tensors_identical("same stream", x, t->apply(photo, b)));
  EXPECT_FALSE(torch::equal(x, t->apply(photo, c)));
  const auto pad = make_train_transform("fashion-mnist", 28, kFashion);
  Rng d(9);
  EXPECT_EQ(pad->apply(ref("gray"), d).sizes(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_ERROR_CONTAINS(pad->apply(torch::zeros({28, 28, 2}, torch::kUInt8), d),
                        "images have 1 or 3 channels, got 2");
  EXPECT_ERROR_CONTAINS(make_train_transform("svhn", 32, kFashion), "unknown dataset 'svhn'");
}

TEST(Transforms, LightingDrawsANewAlphaPerImage) {
  // Only lighting on, flips and crops fixed by a whole-image crop box would still differ, so
  // compare two images' shifts: with one alpha for all (the original's bug) the per-channel
  // mean shift would be identical across samples.
  const auto t = make_train_transform("imagefolder", 32, {{0.0}, {1.0}}, {0, 0, 0, 0.1});
  const auto plain = make_train_transform("imagefolder", 32, {{0.0}, {1.0}});
  const torch::Tensor flat = torch::full({40, 40, 3}, 128, torch::kUInt8);
  std::vector<double> shifts;
  for (int64_t i = 0; i < 4; ++i) {
    Rng r1 = Rng::for_sample(0, 0, i), r2 = Rng::for_sample(0, 0, i);
    shifts.push_back((t->apply(flat, r1) - plain->apply(flat, r2)).mean().item<double>());
  }
  EXPECT_NE(shifts[0], shifts[1]);
  EXPECT_NE(shifts[1], shifts[2]);
}

}  // namespace
}  // namespace densenet::data
