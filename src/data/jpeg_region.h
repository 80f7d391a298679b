#pragma once

#include "densenet/data/image.h"
#include "densenet/data/transforms.h"

#include <c10/util/Exception.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace densenet::data {

/// Decodes only `choose(height, width)`'s box of a baseline RGB or grey JPEG, with the pixels a
/// full decode (decode_image) gives there: libjpeg-turbo's jpeg_crop_scanline and
/// jpeg_skip_scanlines on the box grown by 8 pixels per side, because fancy chroma upsampling
/// reads context beyond it (bench/jpeg_region_probe.cpp: without the margin half of the boxes
/// differ; with it 2,560 of 2,560 match), then the box cut out. Rows below the box are not
/// decoded, so a file truncated below the box is not noticed. nullopt, having called nothing,
/// for data that is not a JPEG and for CMYK/YCCK JPEGs (decode those whole); a c10::Error naming
/// `source` for a corrupt JPEG.
std::optional<Image> decode_jpeg_box(std::string_view bytes, const std::string& source,
                                     const std::function<CropBox(int64_t, int64_t)>& choose);

/// A DataError for `path` from a decoder's c10::Error, its reason without the repeated path.
DataError decode_error(const std::string& path, const c10::Error& error);

}  // namespace densenet::data
