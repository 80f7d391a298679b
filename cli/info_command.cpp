#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/io/state_dict.h"
#include "densenet/model/architecture.h"
#include "densenet/model/densenet.h"
#include "densenet/model/memory_plan.h"
#include "densenet/model/presets.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/amp.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace densenet::cli {

namespace {

struct InfoArguments {
  ModelArguments model;
  bool json = false;
  bool keys = false;
  bool list = false;
  std::string amp = "none";  // the memory plan's activations under this autocast (train's amp)
};

std::optional<c10::ScalarType> amp_of(const InfoArguments& args) {
  try {
    return train::parse_amp(args.amp);
  } catch (const c10::Error&) {
    throw UsageError("--amp: unknown value '" + args.amp + "': use one of none, fp16, bf16");
  }
}

// The plan of a training step on the CPU in `mode` under the --amp given.
MemoryPlan cpu_memory_plan(const ArchitecturePlan& plan, MemoryMode mode,
                           std::optional<c10::ScalarType> amp) {
  return plan_memory(plan, mode, activation_element_size(mode, c10::DeviceType::CPU, amp));
}

std::string with_thousands(int64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

std::string stem_description(const DenseNetOptions& options) {
  return options.uses_small_stem() ? "cifar (3x3 conv)"
                                   : "imagenet (7x7/2 conv, BN, ReLU, 3x3/2 max-pool)";
}

nlohmann::ordered_json memory_json(const MemoryPlan& memory) {
  return {{"kept_bytes", memory.kept_bytes},
          {"peak_bytes", memory.peak_bytes},
          {"peak_stage", memory.peak_stage}};
}

nlohmann::ordered_json plan_json(const ModelArguments& args, const ArchitecturePlan& plan,
                                 const std::string& amp_text, std::optional<c10::ScalarType> amp) {
  const DenseNetOptions& o = plan.options;
  nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
  for (const auto& block : plan.blocks) {
    blocks.push_back(
        {{"layers", block.num_layers},
         {"in_channels", block.in_channels},
         {"out_channels", block.out_channels},
         {"spatial", block.spatial},
         // null: the last block has no transition
         {"transition_out_channels", block.transition_out_channels > 0
                                         ? nlohmann::ordered_json(block.transition_out_channels)
                                         : nlohmann::ordered_json(nullptr)}});
  }
  const std::string overrides = args.overrides_text();
  return {{"arch", args.arch},
          {"overrides",
           overrides.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(overrides)},
          {"options",
           {{"in_channels", o.in_channels()},
            {"num_init_features", o.num_init_features()},
            {"growth_rate", o.effective_growth_rate()},
            {"block_config", o.block_config()},
            {"bn_size", o.bn_size()},
            {"compression", o.compression()},
            {"drop_rate", o.drop_rate()},
            {"num_classes", o.num_classes()},
            {"input_size", o.input_size()},
            {"stem", stem_name(o.effective_stem())},
            {"memory", memory_mode_name(o.memory())}}},
          {"depth", plan.depth()},
          {"blocks", blocks},
          {"final_channels", plan.final_channels},
          {"parameters", plan.num_parameters()},
          {"forward_macs_per_sample", plan.forward_macs()},
          {"training_memory_per_sample",
           {{"naive", memory_json(cpu_memory_plan(plan, MemoryMode::kNaive, amp))},
            {"efficient", memory_json(cpu_memory_plan(plan, MemoryMode::kEfficient, amp))},
            {"minimal", memory_json(cpu_memory_plan(plan, MemoryMode::kMinimal, amp))}}},
          {"training_memory_amp", amp_text}};
}

void print_table(const ModelArguments& args, const ArchitecturePlan& plan,
                 const std::string& amp_text, std::optional<c10::ScalarType> amp) {
  const DenseNetOptions& o = plan.options;
  const std::string arch = args.label();
  std::printf("%s: depth %lld, growth rate k=%lld, %s, compression %g, dropout %g\n", arch.c_str(),
              static_cast<long long>(plan.depth()),
              static_cast<long long>(o.effective_growth_rate()),
              o.bn_size() > 0 ? ("bottleneck " + std::to_string(o.bn_size()) +
                                 "k = " + std::to_string(o.bn_size() * o.effective_growth_rate()))
                                    .c_str()
                              : "no bottleneck",
              o.compression(), o.drop_rate());
  std::printf("input %lldx%lldx%lld, stem: %s -> %lld channels at %lldx%lld\n",
              static_cast<long long>(o.in_channels()), static_cast<long long>(plan.input_size),
              static_cast<long long>(plan.input_size), stem_description(o).c_str(),
              static_cast<long long>(o.num_init_features()),
              static_cast<long long>(plan.stem_out_spatial),
              static_cast<long long>(plan.stem_out_spatial));
  std::printf("memory mode: %s\n\n", memory_mode_name(o.memory()).c_str());
  std::printf("%-6s %7s %14s %10s %12s\n", "block", "layers", "channels", "spatial", "transition");
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    const BlockPlan& block = plan.blocks[b];
    const std::string channels =
        std::to_string(block.in_channels) + " -> " + std::to_string(block.out_channels);
    const std::string spatial = std::to_string(block.spatial) + "x" + std::to_string(block.spatial);
    const std::string transition = block.transition_out_channels > 0
                                       ? "-> " + std::to_string(block.transition_out_channels)
                                       : "-";
    std::printf("%-6zu %7lld %14s %10s %12s\n", b + 1, static_cast<long long>(block.num_layers),
                channels.c_str(), spatial.c_str(), transition.c_str());
  }
  std::printf("\nclassifier: %lld -> %lld\n", static_cast<long long>(plan.final_channels),
              static_cast<long long>(o.num_classes()));
  std::printf("parameters: %s\n", with_thousands(plan.num_parameters()).c_str());
  std::printf("multiply-adds per %lldx%lld sample: %s (%.3f G)\n",
              static_cast<long long>(plan.input_size), static_cast<long long>(plan.input_size),
              with_thousands(plan.forward_macs()).c_str(), plan.forward_macs() / 1e9);
  if (amp) {
    // The plan is the same on the CPU and on CUDA; the CPU autocast of LibTorch 1.13 has no
    // float16, and then only a GPU can run what it describes.
    const bool on_cpu = train::autocast_supported(c10::DeviceType::CPU, *amp);
    std::printf(
        "\ntraining activation memory per sample under %s autocast, on the CPU and on CUDA "
        "(16-bit\nactivations; parameters, gradients and the input batch not included; "
        "`densenet bench --amp %s%s`\nmeasures it, allocator rounding aside):\n",
        amp_text.c_str(), amp_text.c_str(), on_cpu ? "" : " --device cuda");
    if (!on_cpu) {
      std::printf(
          "(this LibTorch's CPU autocast has no %s: on the CPU, train and bench refuse it)\n",
          amp_text.c_str());
    }
  } else {
    std::printf(
        "\ntraining activation memory per sample (float32; parameters, gradients and the\n"
        "input batch not included; `densenet bench` measures it, allocator rounding aside):\n");
  }
  std::printf("  %-10s %12s %12s %s\n", "mode", "kept", "peak", "peak during stage");
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    const MemoryPlan memory = cpu_memory_plan(plan, mode, amp);
    std::printf("  %-10s %12s %12s %lld%s\n", memory_mode_name(mode).c_str(),
                format_bytes(memory.kept_bytes).c_str(), format_bytes(memory.peak_bytes).c_str(),
                static_cast<long long>(memory.peak_stage),
                mode == o.memory() ? "   <- selected" : "");
  }
}

int run_info(const InfoArguments& args) {
  if (args.list) {
    if (args.model.arch_given() || args.model.overrides_architecture()) {
      throw UsageError("--list lists the presets; it takes no --arch or model options");
    }
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& preset : presets()) {
      if (args.json) {
        list.push_back({{"name", preset.name}, {"description", preset.description}});
      } else {
        std::printf("%-16s %s\n", preset.name.c_str(), preset.description.c_str());
      }
    }
    if (args.json) std::cout << list.dump() << "\n";
    return 0;
  }
  const DenseNetOptions options = model_options_from(args.model);
  if (args.keys) {
    DenseNet model(options);
    nlohmann::ordered_json keys = nlohmann::ordered_json::object();
    for (const auto& item : state_dict(*model)) {
      if (args.json) {
        keys[item.key()] = item.value().sizes().vec();
        continue;
      }
      std::string line = item.key();
      if (item.value().dim() > 0) line += " " + format_int_list(item.value().sizes().vec());
      std::cout << line << "\n";
    }
    if (args.json) std::cout << keys.dump() << "\n";
    return 0;
  }
  const ArchitecturePlan plan = plan_architecture(options);
  const std::optional<c10::ScalarType> amp = amp_of(args);
  if (args.json) {
    std::cout << plan_json(args.model, plan, args.amp, amp).dump() << "\n";
  } else {
    print_table(args.model, plan, args.amp, amp);
  }
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArguments>();
  CLI::App* command =
      add_command(app, "info", "describe an architecture: blocks, parameters, MACs, memory, keys",
                  [args] { return run_info(*args); });
  command->footer(
      "Describes a DenseNet: layers, channels and spatial size per block, parameters,\n"
      "multiply-adds, and the planned training activation memory per sample in each mode.");
  add_model_options(*command, args->model);
  command->add_flag("--json", args->json, "print JSON instead of text (with --keys or --list too)");
  CLI::Option* keys = command->add_flag(
      "--keys", args->keys, "print the state-dict keys with shapes, one 'key d0,d1,...' per line");
  command->add_flag("--list", args->list, "list the presets")->excludes(keys);
  command
      ->add_option("--amp", args->amp,
                   "the memory plan under autocast: none, fp16 or bf16 (as train's amp)")
      ->type_name("DTYPE")
      ->capture_default_str();
}

}  // namespace densenet::cli
