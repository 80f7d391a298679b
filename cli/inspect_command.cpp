#include "commands.h"

#include "densenet/io/weights.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace densenet::cli {

namespace {

struct InspectArguments {
  std::string file;
  bool json = false;
};

// Python's names, as `tensor.dtype` prints them without "torch.".
std::string dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "float32";
    case torch::kFloat64:
      return "float64";
    case torch::kFloat16:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kInt64:
      return "int64";
    case torch::kInt32:
      return "int32";
    case torch::kInt16:
      return "int16";
    case torch::kInt8:
      return "int8";
    case torch::kUInt8:
      return "uint8";
    case torch::kBool:
      return "bool";
    case torch::kComplexFloat:
      return "complex64";
    case torch::kComplexDouble:
      return "complex128";
    default:
      return c10::toString(dtype);
  }
}

std::string key_text(const pth::Value& key) {
  switch (key.kind()) {
    case pth::Value::Kind::String:
      return key.as_string();
    case pth::Value::Kind::Int:
      return key.is_big_integer() ? "<big int>" : std::to_string(key.as_int());
    default:
      return "<" + key.type_name() + ">";
  }
}

struct Listing {
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  nlohmann::ordered_json values = nlohmann::ordered_json::array();
  int64_t elements = 0;
  int64_t bytes = 0;
};

nlohmann::ordered_json scalar_json(const pth::Value& value) {
  switch (value.kind()) {
    case pth::Value::Kind::None:
      return nullptr;
    case pth::Value::Kind::Bool:
      return value.as_bool();
    case pth::Value::Kind::Int:
      if (value.is_big_integer()) return "<big int>";
      return value.as_int();
    case pth::Value::Kind::Float:
      // JSON has no infinities or NaN; name them as Python prints them.
      if (std::isnan(value.as_float())) return "nan";
      if (std::isinf(value.as_float())) return value.as_float() > 0 ? "inf" : "-inf";
      return value.as_float();
    case pth::Value::Kind::String:
      return value.as_string();
    case pth::Value::Kind::Bytes:
      return "<" + std::to_string(value.as_string().size()) + " bytes>";
    case pth::Value::Kind::Dict:
      return nlohmann::ordered_json::object();  // an empty dict: {}, as json.dumps writes it
    default:
      return nlohmann::ordered_json::array();  // an empty list, tuple or set
  }
}

// Depth-first: tensors and scalars with their dotted paths (containers nest at most 1000 deep,
// which the loader guarantees).
void list_value(const pth::Value& value, const std::string& path, Listing& out) {
  switch (value.kind()) {
    case pth::Value::Kind::Tensor: {
      const torch::Tensor& tensor = value.as_tensor();
      out.tensors.push_back({{"name", path},
                             {"dtype", dtype_name(tensor.scalar_type())},
                             {"shape", tensor.sizes().vec()}});
      out.elements += tensor.numel();
      out.bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
      return;
    }
    case pth::Value::Kind::Dict:
      if (value.items().empty()) break;
      for (const auto& item : value.items()) {
        list_value(item.second,
                   path.empty() ? key_text(item.first) : path + "." + key_text(item.first), out);
      }
      return;
    case pth::Value::Kind::Tuple:
    case pth::Value::Kind::List:
    case pth::Value::Kind::Set:
      if (value.elements().empty()) break;
      for (size_t i = 0; i < value.elements().size(); ++i) {
        list_value(value.elements()[i],
                   path.empty() ? std::to_string(i) : path + "." + std::to_string(i), out);
      }
      return;
    default:
      break;
  }
  out.values.push_back({{"name", path.empty() ? "<root>" : path}, {"value", scalar_json(value)}});
}

int run_inspect(const InspectArguments& args) {
  const std::string& path = args.file;
  const WeightsFile file = read_weights_file(path);
  const std::string& format = file.format;
  Listing listing;
  list_value(file.root, "", listing);
  if (args.json) {
    nlohmann::ordered_json json = {{"file", path},
                                   {"format", format},
                                   {"tensors", listing.tensors},
                                   {"values", listing.values},
                                   {"total_elements", listing.elements},
                                   {"total_bytes", listing.bytes}};
    std::cout << json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::printf("%s: %s format, %zu tensors, %lld elements, %lld bytes\n", path.c_str(),
              format.c_str(), listing.tensors.size(), static_cast<long long>(listing.elements),
              static_cast<long long>(listing.bytes));
  for (const auto& tensor : listing.tensors) {
    std::ostringstream shape;
    shape << "[";
    for (size_t i = 0; i < tensor["shape"].size(); ++i) {
      shape << (i ? ", " : "") << tensor["shape"][i].get<int64_t>();
    }
    shape << "]";
    std::printf("  %-60s %-9s %s\n", tensor["name"].get<std::string>().c_str(),
                tensor["dtype"].get<std::string>().c_str(), shape.str().c_str());
  }
  for (const auto& value : listing.values) {
    std::printf(
        "  %-60s = %s\n", value["name"].get<std::string>().c_str(),
        value["value"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArguments>();
  CLI::App* command = add_command(app, "inspect", "list the tensors and values in a checkpoint",
                                  [args] { return run_inspect(*args); });
  command->footer(
      std::string(
          "Lists what a checkpoint holds without loading it into a model: every tensor\n"
          "(dotted path, dtype, shape) and every other value (epoch, hyper-parameters).\n"
          "Reads .pth files in torch.save's zip and legacy formats, safely (no code runs),\n"
          "and .safetensors files.") +
      "\n\n" + wrapped(checkpoint_format_limits()));
  command->add_option("FILE", args->file, "checkpoint: .pth or .safetensors")->required();
  command->add_flag("--json", args->json, "print one JSON object");
}

}  // namespace densenet::cli
