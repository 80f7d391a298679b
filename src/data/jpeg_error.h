#pragma once

// libjpeg error handling shared by the whole-image decoder (image.cpp) and the crop-box decoder
// (jpeg_region.cpp): errors longjmp back to the caller with the library's message.

#include <csetjmp>
#include <cstddef>
#include <cstdio>

// libjpeg needs FILE declared first (cstdio above), and jerror.h after jpeglib.h.
#include <jpeglib.h>
// (a separate block, so that include sorting keeps the order)
#include <jerror.h>

namespace densenet::detail {

struct JpegError {
  jpeg_error_mgr manager;  // first, so that the library's pointer is also ours
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

inline void jpeg_fail(j_common_ptr info) {
  auto* error = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, error->message);
  std::longjmp(error->jump, 1);
}

// libjpeg reports a truncated stream as a warning and fills the rest with grey; PIL refuses
// such files ("image file is truncated"), and so does this.
inline void jpeg_message(j_common_ptr info, int level) {
  if (level < 0 &&
      (info->err->msg_code == JWRN_JPEG_EOF || info->err->msg_code == JWRN_HIT_MARKER)) {
    jpeg_fail(info);
  }
}

}  // namespace densenet::detail
