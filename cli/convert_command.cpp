#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/io/pth_file.h"
#include "densenet/io/safetensors.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"
#include "densenet/model/load_weights.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace densenet::cli {

namespace {

struct ConvertArguments {
  std::string checkpoint;
  std::string output;
  std::string to = "torchvision";
  bool state_dict_only = false;
  bool force = false;
  ModelArguments model;
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Without --force, refuses an --output that is an existing file (followed through a symlink),
// as train refuses an occupied output-dir, and names the case where it is the input itself
// (a symlink or hard link to it included). A new path, /dev/stdout or a pipe passes; a
// directory is refused when written.
void check_output(const std::string& input, const std::string& output, bool force) {
  if (force) return;
  std::error_code error;
  if (!std::filesystem::is_regular_file(output, error)) return;
  const bool same = std::filesystem::equivalent(input, output, error) && !error;
  TORCH_CHECK(!same, "--output '", output,
              "' is the --checkpoint file itself: converting would replace it; add --force to "
              "replace it (it is read whole first), or choose another --output");
  TORCH_CHECK(false, "--output '", output,
              "' exists: add --force to replace it, or choose another --output");
}

int run_convert(const ConvertArguments& args) {
  if (!args.model.arch_given() && args.model.overrides_architecture()) {
    throw UsageError("model options (" + args.model.overrides_text() +
                     ") only check the weights against --arch: add --arch NAME");
  }
  if (!args.model.arch_given() && args.model.memory) {
    throw UsageError("--memory changes no weights: convert ignores it");
  }
  KeyLayout layout;
  try {
    layout = parse_key_layout(args.to);
  } catch (const c10::Error& error) {
    throw UsageError(std::string("--to: ") + error.what_without_backtrace());
  }
  const std::string* input = &args.checkpoint;
  const std::string* output = &args.output;
  check_output(*input, *output, args.force);
  const WeightsFile file = read_weights_file(*input);
  const pth::Value& root = file.root;
  const LocatedStateDict located = locate_state_dict(root, *input);
  const StateDict original = tensors_of(located.dict, *input);
  const StateDict canonical = to_torchvision_keys(original);
  if (args.model.arch_given()) {
    // Strict: a mismatch says what the file holds and which flags fit it.
    DenseNet model(model_options_from(args.model));
    load_densenet_weights(*model, canonical, {*input, args.model.arch, "", true});
  }
  // A converter copies tensors bit for bit, so a diverged run's weights can still be converted
  // (to inspect them elsewhere), but never silently: predict, eval and train refuse them.
  if (const std::string bad = non_finite_summary(canonical); !bad.empty()) {
    std::fprintf(stderr,
                 "warning: the weights in '%s' hold non-finite values: %s; copied as they are\n",
                 input->c_str(), bad.c_str());
  }
  const StateDict converted = from_torchvision_keys(canonical, layout);

  if (ends_with(*output, ".safetensors")) {
    write_safetensors(*output, converted);
  } else {
    pth::Value state = state_dict_value(converted, located.dict);
    pth::Value out_root = state;
    if (!located.path.empty() && !args.state_dict_only) {
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

}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArguments>();
  CLI::App* command =
      add_command(app, "convert", "rewrite a checkpoint's keys as .pth or .safetensors",
                  [args] { return run_convert(*args); });
  command->footer(
      std::string(
          "Reads a DenseNet checkpoint in any key layout (torchvision's current or legacy\n"
          "names such as denselayer1.norm.1.weight, the efficient projects' layouts,\n"
          "DataParallel's module. prefix), adds num_batches_tracked where batch norms lack\n"
          "it, and writes the keys of --to in torch.save's zip format (or safetensors for a\n"
          ".safetensors output). Tensors are copied bit for bit. A state dict wrapped as\n"
          "{epoch, state_dict, ...} stays wrapped unless --state-dict-only. With --arch, the\n"
          "weights are first loaded strictly into that model; when they do not fit, the error\n"
          "says what the file holds and the flags that fit it. An existing --output (the input\n"
          "itself included) is replaced only with --force. The output is written atomically;\n"
          "a symlink is followed, a replaced file keeps its mode, /dev/stdout and pipes are\n"
          "written in place.") +
      "\n\n" + wrapped(checkpoint_format_limits()));
  command
      ->add_option("--checkpoint", args->checkpoint,
                   "checkpoint to read: .pth (zip or legacy format) or .safetensors")
      ->type_name("IN")
      ->required();
  command
      ->add_option("--output", args->output,
                   "file to write: .pth in torch.save's zip format, or .safetensors")
      ->type_name("OUT")
      ->required();
  command->add_option("--to", args->to, "key layout to write: " + key_layout_names())
      ->type_name("LAYOUT")
      ->capture_default_str();
  command->add_flag("--state-dict-only", args->state_dict_only,
                    "write only the state dict, dropping {epoch, optimizer, ...}");
  command->add_flag("--force", args->force,
                    "replace an existing --output, even the --checkpoint file itself");
  ModelOptionSettings model;
  model.default_arch = "";  // optional: only checks the weights
  add_model_options(*command, args->model, model);
}

}  // namespace densenet::cli
