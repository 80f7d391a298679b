#include "io/pth/storage_types.h"

#include <c10/util/Exception.h>

#include <array>
#include <utility>

namespace densenet::pth {

namespace {

const std::array<std::pair<const char*, torch::Dtype>, 12>& storage_classes() {
  static const std::array<std::pair<const char*, torch::Dtype>, 12> table = {{
      {"FloatStorage", torch::kFloat32},
      {"DoubleStorage", torch::kFloat64},
      {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16},
      {"LongStorage", torch::kInt64},
      {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16},
      {"CharStorage", torch::kInt8},
      {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool},
      {"ComplexFloatStorage", torch::kComplexFloat},
      {"ComplexDoubleStorage", torch::kComplexDouble},
  }};
  return table;
}

}  // namespace

std::optional<torch::Dtype> storage_dtype(const std::string& dotted_name) {
  if (dotted_name == "torch.UntypedStorage") return torch::kUInt8;
  std::string name;
  if (dotted_name.rfind("torch.cuda.", 0) == 0) {
    name = dotted_name.substr(11);
  } else if (dotted_name.rfind("torch.", 0) == 0) {
    name = dotted_name.substr(6);
  } else {
    return std::nullopt;
  }
  for (const auto& entry : storage_classes()) {
    if (name == entry.first) return entry.second;
  }
  return std::nullopt;
}

std::string storage_type_name(torch::Dtype dtype) {
  for (const auto& entry : storage_classes()) {
    if (entry.second == dtype) return entry.first;
  }
  TORCH_CHECK(false, "cannot save a tensor of dtype ", dtype, " in a PyTorch checkpoint");
}

}  // namespace densenet::pth
