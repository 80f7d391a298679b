#include "densenet/io/safetensors.h"

#include "densenet/io/atomic_file.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>

namespace densenet {

namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kLengthPrefixBytes = 8;
// The reference implementation refuses headers over 100 MB; a larger one is corrupt.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

struct DtypeName {
  const char* name;
  torch::ScalarType type;
};

constexpr DtypeName kDtypes[] = {
    {"F64", torch::kFloat64},   {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
    {"I16", torch::kInt16},     {"I8", torch::kInt8},     {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
};

torch::ScalarType dtype_from_name(const std::string& name, const std::string& where) {
  for (const auto& entry : kDtypes) {
    if (name == entry.name) return entry.type;
  }
  TORCH_CHECK(false, where, ": unsupported dtype '", name,
              "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
}

std::string dtype_name(torch::ScalarType type) {
  for (const auto& entry : kDtypes) {
    if (type == entry.type) return entry.name;
  }
  TORCH_CHECK(false, "safetensors cannot store tensors of dtype ", type);
}

bool little_endian_host() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

uint64_t checked_multiply(uint64_t a, uint64_t b, const std::string& where) {
  TORCH_CHECK(b == 0 || a <= std::numeric_limits<uint64_t>::max() / b, where,
              ": tensor size overflows");
  return a * b;
}

torch::Tensor parse_entry(const std::string& name, const Json& entry, std::string_view data,
                          const std::string& source) {
  const std::string where = source + ": tensor '" + name + "'";
  TORCH_CHECK(entry.is_object(), where, ": header entry is not an object");
  TORCH_CHECK(entry.contains("dtype") && entry["dtype"].is_string(), where,
              ": header entry has no string 'dtype'");
  TORCH_CHECK(entry.contains("shape") && entry["shape"].is_array(), where,
              ": header entry has no array 'shape'");
  TORCH_CHECK(entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
                  entry["data_offsets"].size() == 2,
              where, ": header entry has no two-element 'data_offsets'");
  const torch::ScalarType type = dtype_from_name(entry["dtype"].get<std::string>(), where);

  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (const auto& dim : entry["shape"]) {
    TORCH_CHECK(dim.is_number_unsigned(), where, ": shape ", entry["shape"].dump(),
                " has an entry that is not a non-negative integer");
    const uint64_t size = dim.get<uint64_t>();
    TORCH_CHECK(size <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), where,
                ": shape entry ", size, " is too large");
    numel = checked_multiply(numel, size, where);
    shape.push_back(static_cast<int64_t>(size));
  }
  const auto& offsets = entry["data_offsets"];
  TORCH_CHECK(offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(), where,
              ": data_offsets must be non-negative integers, got ", offsets.dump());
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  TORCH_CHECK(begin <= end && end <= data.size(), where, ": data_offsets [", begin, ", ", end,
              "] lie outside the ", data.size(), " bytes of tensor data (truncated file?)");
  const uint64_t expected = checked_multiply(numel, c10::elementSize(type), where);
  TORCH_CHECK(end - begin == expected, where, ": shape ", entry["shape"].dump(), " of ",
              entry["dtype"].get<std::string>(), " needs ", expected,
              " bytes but data_offsets span ", end - begin);

  torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(type));
  if (expected > 0) std::memcpy(tensor.data_ptr(), data.data() + begin, expected);
  if (type == torch::kBool) {
    // Any byte other than 0 or 1 would be undefined behaviour when read as bool.
    const auto* bytes = reinterpret_cast<const unsigned char*>(data.data() + begin);
    for (uint64_t i = 0; i < expected; ++i) {
      TORCH_CHECK(bytes[i] <= 1, where, ": BOOL data holds byte ", int(bytes[i]));
    }
  }
  return tensor;
}

}  // namespace

TensorFile parse_safetensors(std::string_view bytes, const std::string& source) {
  TORCH_CHECK(little_endian_host(), "safetensors files are little-endian; this host is not");
  TORCH_CHECK(bytes.size() >= kLengthPrefixBytes, source, ": not a safetensors file (",
              bytes.size(), " bytes, shorter than the 8-byte header length)");
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), kLengthPrefixBytes);
  TORCH_CHECK(
      header_length <= kMaxHeaderBytes && header_length <= bytes.size() - kLengthPrefixBytes,
      source, ": header length ", header_length, " does not fit the file of ", bytes.size(),
      " bytes (truncated or not a safetensors file)");
  const std::string_view header_text = bytes.substr(kLengthPrefixBytes, header_length);
  const std::string_view data = bytes.substr(kLengthPrefixBytes + header_length);

  Json header = Json::parse(header_text.begin(), header_text.end(), nullptr,
                            /*allow_exceptions=*/false);
  TORCH_CHECK(!header.is_discarded(), source, ": header is not valid JSON");
  TORCH_CHECK(header.is_object(), source, ": header is not a JSON object");

  TensorFile file;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      TORCH_CHECK(item.value().is_object(), source, ": __metadata__ is not an object");
      for (const auto& meta : item.value().items()) {
        TORCH_CHECK(meta.value().is_string(), source, ": __metadata__ value of '", meta.key(),
                    "' is not a string");
        file.metadata[meta.key()] = meta.value().get<std::string>();
      }
      continue;
    }
    TORCH_CHECK(file.tensors.find(item.key()) == nullptr, source, ": tensor '", item.key(),
                "' appears twice");
    file.tensors.insert(item.key(), parse_entry(item.key(), item.value(), data, source));
  }
  return file;
}

TensorFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

std::string serialize_safetensors(const StateDict& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  TORCH_CHECK(little_endian_host(), "safetensors files are little-endian; this host is not");
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& item : metadata) meta[item.first] = item.second;
    header["__metadata__"] = meta;
  }
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& item : tensors) {
    TORCH_CHECK(item.key() != "__metadata__", "a tensor cannot be named __metadata__");
    torch::Tensor tensor = item.value().detach().to(torch::kCPU).contiguous();
    const uint64_t size = tensor.numel() * tensor.element_size();
    header[item.key()] = {{"dtype", dtype_name(tensor.scalar_type())},
                          {"shape", tensor.sizes().vec()},
                          {"data_offsets", {offset, offset + size}}};
    offset += size;
    contiguous.push_back(tensor);
  }
  std::string header_text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_length = header_text.size();

  std::string out;
  out.reserve(kLengthPrefixBytes + header_length + offset);
  out.append(reinterpret_cast<const char*>(&header_length), kLengthPrefixBytes);
  out.append(header_text);
  for (const auto& tensor : contiguous) {
    out.append(static_cast<const char*>(tensor.data_ptr()), tensor.numel() * tensor.element_size());
  }
  return out;
}

void write_safetensors(const std::string& path, const StateDict& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomically(path, serialize_safetensors(tensors, metadata));
}

}  // namespace densenet
