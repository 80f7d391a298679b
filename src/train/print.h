#pragma once

#include <cstdarg>
#include <cstdio>
#include <ostream>
#include <string>

namespace densenet::train::detail {

/// printf-style formatting onto a stream: the trainer's lines are tables of numbers whose widths
/// and precisions read best as format strings.
__attribute__((format(printf, 2, 3))) inline void print(std::ostream& out, const char* format,
                                                        ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  const int length = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(static_cast<size_t>(length > 0 ? length : 0) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  va_end(args);
  text.resize(static_cast<size_t>(length > 0 ? length : 0));
  out << text;
}

/// "1 image", "2 images": `count` and the noun, plural unless it is one.
inline std::string counted(long long count, const char* noun, const char* plural_suffix = "s") {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : plural_suffix);
}

}  // namespace densenet::train::detail
