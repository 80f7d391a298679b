#include "legacy_command.h"

#include "arguments.h"
#include "model_arguments.h"

#include "densenet/io/pth_file.h"
#include "densenet/io/safetensors.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"

#include <cstdio>
#include <iostream>

namespace densenet::cli {

namespace {

std::vector<OptionSpec> convert_specs() {
  std::vector<OptionSpec> specs = {
      {"checkpoint", "IN", "checkpoint to read: .pth (zip or legacy format) or .safetensors"},
      {"output", "OUT", "file to write: .pth in torch.save's zip format, or .safetensors"},
      {"to", "LAYOUT", "torchvision (default) or efficient-pytorch (the original project's keys)"},
      {"state-dict-only", "", "write only the state dict, dropping {epoch, optimizer, ...}"},
  };
  for (const auto& spec : model_option_specs()) specs.push_back(spec);
  specs.push_back({"help", "", "show this help"});
  return specs;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int convert_command(const std::vector<std::string>& raw_args) {
  const std::vector<OptionSpec> specs = convert_specs();
  Arguments args(raw_args, specs);
  if (args.flag("help")) {
    std::cout
        << "usage: densenet convert --checkpoint IN --output OUT\n"
           "                        [--to torchvision|efficient-pytorch] [--state-dict-only]\n"
           "                        [--arch NAME [overrides]]\n\n"
           "Reads a DenseNet checkpoint in any key layout (torchvision's current or legacy\n"
           "names such as denselayer1.norm.1.weight, the original efficient project's\n"
           "bottleneck.norm_weight, DataParallel's module. prefix), adds num_batches_tracked\n"
           "where batch norms lack it, and writes the keys of --to in torch.save's zip format\n"
           "(or safetensors for a .safetensors output). Tensors are copied bit for bit. A state\n"
           "dict wrapped as {epoch, state_dict, ...} stays wrapped unless --state-dict-only.\n"
           "With --arch, the weights are first loaded strictly into that model, and every\n"
           "missing, unexpected or mismatched key is reported. The output is written\n"
           "atomically.\n\n"
        << format_options(specs);
    return 0;
  }
  if (!args.positionals().empty()) {
    throw UsageError("convert takes no positional arguments, got '" + args.positionals()[0] + "'");
  }
  const auto input = args.value("checkpoint");
  const auto output = args.value("output");
  if (!input) throw UsageError("--checkpoint IN is required");
  if (!output) throw UsageError("--output OUT is required");
  const KeyLayout layout = parse_key_layout(args.value("to").value_or("torchvision"));

  const WeightsFile file = read_weights_file(*input);
  const pth::Value& root = file.root;
  const LocatedStateDict located = locate_state_dict(root, *input);
  const StateDict original = tensors_of(located.dict, *input);
  const StateDict canonical = to_torchvision_keys(original);
  if (args.has("arch")) {
    DenseNet model(model_options_from(args));
    try {
      load_state_dict(*model, fit_final_norm_name(canonical, *model), /*strict=*/true);
    } catch (const c10::Error& error) {
      TORCH_CHECK(false, "'", *input, "' does not hold a ", *args.value("arch"),
                  " with these options: ", error.what_without_backtrace());
    }
  }
  const StateDict converted = from_torchvision_keys(canonical, layout);

  if (ends_with(*output, ".safetensors")) {
    write_safetensors(*output, converted);
  } else {
    pth::Value state = state_dict_value(converted, located.dict);
    pth::Value out_root = state;
    if (!located.path.empty() && !args.flag("state-dict-only")) {
      // Keep the wrapper ({epoch, optimizer, ...}) with the converted state dict in its place.
      out_root = pth::Value::dict({}, root.is_ordered_dict());
      for (const auto& item : root.items()) {
        const bool is_state =
            item.first.is(pth::Value::Kind::String) && item.first.as_string() == located.path;
        out_root.set_item(item.first, is_state ? state : item.second);
      }
      out_root.attributes() = root.attributes();
    }
    pth::write_checkpoint(*output, out_root);
  }
  int64_t renamed = 0;
  for (const auto& item : converted) renamed += original.find(item.key()) == nullptr ? 1 : 0;
  std::printf("%s (%s, %zu tensors%s) -> %s (%s keys, %zu tensors, %lld renamed or added)\n",
              input->c_str(), (file.format + " format").c_str(), original.size(),
              located.path.empty() ? "" : (" under '" + located.path + "'").c_str(),
              output->c_str(), key_layout_name(layout), converted.size(),
              static_cast<long long>(renamed));
  return 0;
}

}  // namespace densenet::cli
