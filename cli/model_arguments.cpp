#include "model_arguments.h"

#include "usage_error.h"

#include <torch/cuda.h>

#include "densenet/model/architecture.h"
#include "densenet/model/overrides.h"
#include "densenet/model/presets.h"

#include <cmath>
#include <optional>

#include <c10/util/Exception.h>

#include <cmath>
#include <optional>
#include <sstream>

namespace densenet::cli {

namespace {

std::string preset_names() {
  std::string names;
  for (const auto& preset : presets()) names += (names.empty() ? "" : ", ") + preset.name;
  return names;
}

// A CLI11 check that runs one of the library's parsers and reports its message.
template <typename Parse>
CLI::Validator library_check(Parse parse) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        try {
          parse(text);
          return "";
        } catch (const c10::Error& error) {
          return error.what_without_backtrace();
        }
      },
      "");
}

}  // namespace

CLI::Validator integer_in(int64_t low, int64_t high) {
  const std::string range = std::to_string(low) + " to " + std::to_string(high);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        int64_t value = 0;
        if (!CLI::detail::lexical_cast(text, value)) {
          return "expects an integer from " + range + ", got '" + text + "'";
        }
        return value >= low && value <= high ? "" : "must be from " + range + ", got " + text;
      },
      "");
}

CLI::Validator integer_at_least(int64_t low) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        int64_t value = 0;
        if (!CLI::detail::lexical_cast(text, value))
          return "expects an integer, got '" + text + "'";
        return value >= low ? "" : "must be at least " + std::to_string(low) + ", got " + text;
      },
      "");
}

CLI::Validator number_at_least(double low) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || std::isnan(value)) {
          return "expects a number, got '" + text + "'";
        }
        return value >= low ? ""
                            : "must be at least " + CLI::detail::to_string(low) + ", got " + text;
      },
      "");
}

namespace {

// A CLI11 check from an override field's own check, so that the message names the flag:
// "--compression: must be in (0, 1], got 0".
CLI::Validator field_check(const OverrideField& field) {
  return CLI::Validator([&field](std::string& text) { return field.check(text); }, "");
}

}  // namespace

bool ModelArguments::overrides_architecture() const {
  return !overrides_text().empty();
}

std::string ModelArguments::overrides_text() const {
  std::string text;
  for (const OverrideField& field : override_fields()) {
    const auto given = overrides.find(field.name);
    if (given == overrides.end()) continue;
    text += (text.empty() ? "--" : " --") + field.name + " " + given->second;
  }
  return text;
}

std::string ModelArguments::label() const {
  const std::string overrides = overrides_text();
  return overrides.empty() ? arch : arch + " (overridden: " + overrides + ")";
}

void add_model_options(CLI::App& command, ModelArguments& args,
                       const ModelOptionSettings& settings) {
  args.arch = settings.default_arch;
  CLI::Option* arch = command.add_option(
      "--arch", args.arch,
      "preset: " + preset_names() +
          (settings.require_arch           ? " (required: no default)"
           : settings.default_arch.empty() ? " (none by default)"
                                           : " (default " + settings.default_arch + ")"));
  arch->type_name("NAME");
  if (settings.require_arch) arch->required();
  args.arch_option = arch;
  for (const OverrideField& field : override_fields()) {
    // The original project's spelling (efficient-densenet-pytorch's constructor argument) is a
    // second name of the same option.
    const std::string names =
        "--" + field.name + (field.original.empty() ? "" : ",--" + field.original);
    command
        .add_option_function<std::string>(
            names, [&args, &field](const std::string& text) { args.overrides[field.name] = text; },
            field.help)
        ->type_name(field.value_name)
        ->check(field_check(field));
  }
  if (settings.memory_list_help.empty()) {
    command.add_option("--memory", args.memory, "naive | efficient | minimal")
        ->type_name("MODE")
        ->check(library_check([](const std::string& text) { parse_memory_mode(text); }));
  } else {
    command.add_option("--memory", args.memory, settings.memory_list_help)
        ->type_name("LIST")
        ->check(library_check([](const std::string& text) { parse_memory_modes(text); }));
  }
  add_refused_spellings(command, args);
}

void add_refused_spellings(CLI::App& command, ModelArguments& args) {
  // The original project's options without an equivalent here: rejected with the right one.
  command.add_option("--depth", args.depth)->group("");
  command.add_option("--efficient", args.efficient)->group("")->expected(0, 1);
  command.add_option("--small-inputs,--small_inputs", args.small_inputs)->group("")->expected(0, 1);
}

void refuse_original_spellings(const ModelArguments& args) {
  if (args.depth) {
    throw UsageError(
        "--depth is not an option here: choose a preset with --arch (e.g. densenet-bc-100 is "
        "depth 100) or give --block-config N,N,N (depth = 3N+4, or 6N+4 with bottlenecks)");
  }
  if (args.efficient) throw UsageError("--efficient is spelled --memory efficient here");
  if (args.small_inputs) throw UsageError("--small-inputs is spelled --stem cifar here");
}

DenseNetOptions model_options_from(const ModelArguments& args, bool read_memory) {
  refuse_original_spellings(args);
  DenseNetOptions options;
  try {
    options = preset_options(args.arch);
  } catch (const c10::Error& error) {
    throw UsageError(std::string("--arch: ") + error.what_without_backtrace());
  }
  try {
    ModelOverrides overrides;
    for (const auto& [name, text] : args.overrides) find_override_field(name)->set(overrides, text);
    options = apply_overrides(options, overrides);
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  if (read_memory && args.memory) options.memory(parse_memory_mode(*args.memory));
  try {
    validate(options);
    plan_architecture(options);  // throws when a count overflows
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  return options;
}

std::vector<MemoryMode> memory_modes_from(const std::string& text) {
  try {
    return parse_memory_modes(text);
  } catch (const c10::Error& error) {
    throw UsageError(std::string("--memory: ") + error.what_without_backtrace());
  }
}

torch::Device device_from(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device = torch::Device(name);  // cpu, cuda, cuda:N, as train and eval read --device
  } catch (const c10::Error&) {
  }
  if (!device || (!device->is_cpu() && !device->is_cuda()) ||
      (device->is_cpu() && device->has_index())) {
    throw UsageError("--device: unknown device '" + name + "': use cpu or cuda (cuda:N for GPU N)");
  }
  // A device this machine lacks is no mistake in the command line (it runs elsewhere): exit 1,
  // as train and eval do.
  TORCH_CHECK(!device->is_cuda() || torch::cuda::is_available(), "--device ", name,
              ": no CUDA device is available (or LibTorch was built without CUDA)");
  TORCH_CHECK(!device->is_cuda() || !device->has_index() ||
                  device->index() < static_cast<int64_t>(torch::cuda::device_count()),
              "--device ", name, ": this machine has ", torch::cuda::device_count(),
              " CUDA device(s), cuda:0 to cuda:", torch::cuda::device_count() - 1);
  return *device;
}

std::vector<MemoryMode> parse_memory_modes(const std::string& text) {
  std::vector<MemoryMode> modes;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) modes.push_back(parse_memory_mode(item));
  TORCH_CHECK(!modes.empty(), "no memory mode given: use e.g. naive,efficient,minimal");
  return modes;
}

}  // namespace densenet::cli
