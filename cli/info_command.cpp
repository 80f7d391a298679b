#include "legacy_command.h"

#include "arguments.h"
#include "model_arguments.h"

#include "densenet/io/state_dict.h"
#include "densenet/model/architecture.h"
#include "densenet/model/densenet.h"
#include "densenet/model/memory_plan.h"
#include "densenet/model/presets.h"
#include "densenet/tools/memory_tracker.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace densenet::cli {

namespace {

std::vector<OptionSpec> info_specs() {
  std::vector<OptionSpec> specs = model_option_specs();
  specs.push_back({"json", "", "print one JSON object instead of a table"});
  specs.push_back(
      {"keys", "", "print the state-dict keys with shapes, one 'key d0,d1,...' per line"});
  specs.push_back({"list", "", "list the presets"});
  specs.push_back({"help", "", "show this help"});
  return specs;
}

std::string with_thousands(int64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

std::string stem_description(const DenseNetOptions& options) {
  return options.uses_small_stem() ? "3x3 conv (small inputs)"
                                   : "7x7/2 conv, BN, ReLU, 3x3/2 max-pool (ImageNet)";
}

nlohmann::ordered_json plan_json(const std::string& arch, const ArchitecturePlan& plan) {
  const DenseNetOptions& o = plan.options;
  nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
  for (const auto& block : plan.blocks) {
    blocks.push_back({{"layers", block.num_layers},
                      {"in_channels", block.in_channels},
                      {"out_channels", block.out_channels},
                      {"spatial", block.spatial},
                      {"transition_out_channels", block.transition_out_channels}});
  }
  return {{"arch", arch},
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
            {"memory", memory_mode_name(o.memory())}}},
          {"depth", plan.depth()},
          {"stem", o.uses_small_stem() ? "small" : "imagenet"},
          {"blocks", blocks},
          {"final_channels", plan.final_channels},
          {"parameters", plan.num_parameters()},
          {"forward_macs_per_sample", plan.forward_macs()},
          {"training_memory_per_sample",
           {{"naive", plan_memory(plan, MemoryMode::kNaive).peak_bytes},
            {"efficient", plan_memory(plan, MemoryMode::kEfficient).peak_bytes},
            {"minimal", plan_memory(plan, MemoryMode::kMinimal).peak_bytes}}}};
}

void print_table(const std::string& arch, const ArchitecturePlan& plan) {
  const DenseNetOptions& o = plan.options;
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
  std::printf(
      "\ntraining activation memory per sample (float32; parameters, gradients and the\n"
      "input batch not included; `densenet bench` measures the same):\n");
  std::printf("  %-10s %12s %12s %s\n", "mode", "kept", "peak", "peak during stage");
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    const MemoryPlan memory = plan_memory(plan, mode);
    std::printf("  %-10s %12s %12s %lld%s\n", memory_mode_name(mode).c_str(),
                format_bytes(memory.kept_bytes).c_str(), format_bytes(memory.peak_bytes).c_str(),
                static_cast<long long>(memory.peak_stage),
                mode == o.memory() ? "   <- selected" : "");
  }
}

}  // namespace

int info_command(const std::vector<std::string>& raw_args) {
  const std::vector<OptionSpec> specs = info_specs();
  Arguments args(raw_args, specs);
  if (args.flag("help")) {
    std::cout << "usage: densenet info [--arch NAME] [overrides] [--json | --keys | --list]\n\n"
                 "Describes a DenseNet: layers, channels per block, parameters, multiply-adds.\n\n"
              << format_options(specs);
    return 0;
  }
  if (!args.positionals().empty()) {
    throw UsageError("info takes no positional arguments, got '" + args.positionals()[0] + "'");
  }
  if (args.flag("list")) {
    for (const auto& preset : presets()) {
      std::printf("%-16s %s\n", preset.name.c_str(), preset.description.c_str());
    }
    return 0;
  }
  const std::string arch = args.value("arch").value_or("densenet-40");
  const DenseNetOptions options = model_options_from(args);
  if (args.flag("keys")) {
    DenseNet model(options);
    for (const auto& item : state_dict(*model)) {
      std::string line = item.key();
      if (item.value().dim() > 0) line += " " + format_int_list(item.value().sizes().vec());
      std::cout << line << "\n";
    }
    return 0;
  }
  const ArchitecturePlan plan = plan_architecture(options);
  if (args.flag("json")) {
    std::cout << plan_json(arch, plan).dump() << "\n";
  } else {
    print_table(arch, plan);
  }
  return 0;
}

}  // namespace densenet::cli
