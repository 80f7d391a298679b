#pragma once

#include "densenet/io/state_dict.h"

#include <map>
#include <string>
#include <string_view>

namespace densenet {

/// Tensors and string metadata of a safetensors file (an 8-byte little-endian header length,
/// a JSON header mapping names to {dtype, shape, data_offsets}, then raw little-endian data).
/// Used for golden test data: Python writes it with nothing but the standard library.
struct TensorFile {
  StateDict tensors;                            // in the header's order
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
};

/// Parses a whole safetensors file held in memory. `source` names it in error messages.
/// Every malformed input (truncated, bad JSON, unknown dtype, sizes or offsets that disagree
/// with the data) is a c10::Error that says what is wrong; nothing is read out of bounds.
TensorFile parse_safetensors(std::string_view bytes, const std::string& source);

/// True when `bytes` starts like a safetensors file (an 8-byte length, then the JSON header).
inline bool looks_like_safetensors(std::string_view bytes) {
  return bytes.size() >= 9 && bytes[8] == '{';
}

TensorFile read_safetensors(const std::string& path);

/// Serialises contiguous copies of `tensors` (any device; written from CPU) in order.
std::string serialize_safetensors(const StateDict& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

/// Writes atomically (see write_file_atomically).
void write_safetensors(const std::string& path, const StateDict& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace densenet
