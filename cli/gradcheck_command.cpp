#include "legacy_command.h"

#include "arguments.h"
#include "model_arguments.h"

#include "densenet/tools/gradcheck.h"

#include <cstdio>
#include <iostream>
#include <sstream>

namespace densenet::cli {

namespace {

std::vector<OptionSpec> gradcheck_specs() {
  std::vector<OptionSpec> specs =
      model_option_specs("modes to check against naive (default efficient,minimal)");
  specs.push_back({"dtype", "TYPE", "float32, float64 or both (default both)"});
  specs.push_back({"batch", "N", "batch size (default 4)"});
  specs.push_back({"mode", "WHICH", "train, eval or both (default both)"});
  specs.push_back({"seed", "S", "random seed (default 0)"});
  specs.push_back({"device", "DEV", "cpu (default) or cuda; TF32 is turned off for the check"});
  specs.push_back({"no-finite-differences", "", "skip the finite-difference check"});
  specs.push_back({"help", "", "show this help"});
  return specs;
}

void print_comparison(const ModeComparison& comparison) {
  std::printf("%s: %s\n", comparison.description.c_str(), comparison.passed() ? "PASS" : "FAIL");
  for (const auto& group : comparison.groups) {
    std::printf("  %-22s max abs %.3e  max rel %.3e (tolerance %.0e)", group.group.c_str(),
                group.max_abs, group.max_rel, group.tolerance);
    if (group.mode_rel_to_float64 >= 0) {
      std::printf("  vs float64: mode %.3e, naive %.3e", group.mode_rel_to_float64,
                  group.naive_rel_to_float64);
    }
    std::printf("  %s  [worst: %s]\n", group.passed() ? "ok" : "FAIL", group.worst_tensor.c_str());
  }
}

}  // namespace

int gradcheck_command(const std::vector<std::string>& raw_args) {
  const std::vector<OptionSpec> specs = gradcheck_specs();
  Arguments args(raw_args, specs);
  if (args.flag("help")) {
    std::cout
        << "usage: densenet gradcheck --arch NAME [overrides] [--memory efficient,minimal]\n"
           "                          [--dtype float32|float64|both] [--mode train|eval|both]\n"
           "                          [--device cpu|cuda]\n\n"
           "Builds a naive model and an efficient/minimal one with the same weights and\n"
           "non-trivial running statistics, runs one training or eval step on both and compares\n"
           "the output, the input gradient, every parameter gradient and the state dict after\n"
           "the step. Tolerances, relative to each tensor's scale: float64 1e-10; float32 1e-5,\n"
           "outputs; gradients no further from a float64 run than 20x naive's own distance or\n"
           "3e-2 (float32 training of deep DenseNets amplifies rounding and moves ReLU kinks;\n"
           "exactness is proven in float64). Then finite differences in double on a tiny\n"
           "network of the same kind (on the CPU). With --device cuda both models run on the GPU\n"
           "with TF32 off. Exits 1 on any FAIL.\n\n"
        << format_options(specs);
    return 0;
  }
  if (!args.positionals().empty()) {
    throw UsageError("gradcheck takes no positional arguments, got '" + args.positionals()[0] +
                     "'");
  }
  const DenseNetOptions options = model_options_from(args, /*read_memory=*/false);
  const std::vector<MemoryMode> modes =
      parse_memory_modes(args.value("memory").value_or("efficient,minimal"));
  std::vector<torch::Dtype> dtypes;
  const std::string dtype = args.value("dtype").value_or("both");
  if (dtype == "float32" || dtype == "both") dtypes.push_back(torch::kFloat32);
  if (dtype == "float64" || dtype == "both") dtypes.push_back(torch::kFloat64);
  TORCH_CHECK(!dtypes.empty(), "unknown --dtype '", dtype, "': use float32, float64 or both");
  std::vector<bool> train_modes;
  const std::string which = args.value("mode").value_or("both");
  if (which == "train" || which == "both") train_modes.push_back(true);
  if (which == "eval" || which == "both") train_modes.push_back(false);
  TORCH_CHECK(!train_modes.empty(), "unknown --mode '", which, "': use train, eval or both");
  const int64_t batch = args.integer("batch").value_or(4);
  TORCH_CHECK(batch >= 1, "--batch must be >= 1, got ", batch);
  const int64_t seed = args.integer("seed").value_or(0);
  const torch::Device device = device_from(args);
  // TF32 convolutions/matmuls would round float32 inputs to 10-bit mantissas: the float32
  // comparison is about the memory modes, not about TF32.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);

  bool all_passed = true;
  for (MemoryMode mode : modes) {
    TORCH_CHECK(mode != MemoryMode::kNaive,
                "--memory naive: naive is the reference; check "
                "efficient or minimal");
    for (torch::Dtype type : dtypes) {
      for (bool train : train_modes) {
        const ModeComparison comparison = compare_memory_modes(
            options, mode,
            ModeComparisonOptions().batch(batch).dtype(type).train(train).seed(seed).device(
                device));
        print_comparison(comparison);
        all_passed = all_passed && comparison.passed();
      }
    }
  }
  if (!args.flag("no-finite-differences")) {
    // The same kind of network (layer type, stem, compression, dropout), tiny, in double.
    DenseNetOptions tiny = options;
    tiny.num_init_features(4).growth_rate(3).block_config({2, 2}).num_classes(3).input_size(
        options.uses_small_stem() ? 8 : 40);
    if (tiny.bn_size() > 0) tiny.bn_size(2);
    for (MemoryMode mode : modes) {
      for (bool train : train_modes) {
        const FiniteDifferenceResult fd = finite_difference_check(tiny, mode, train, seed);
        std::printf(
            "finite differences, %s, %s, float64: max rel error %.3e over %lld entries "
            "(tolerance %.0e, worst: %s): %s\n",
            memory_mode_name(mode).c_str(), train ? "train" : "eval", fd.max_rel_error,
            static_cast<long long>(fd.checked), fd.tolerance, fd.worst.c_str(),
            fd.passed() ? "PASS" : "FAIL");
        all_passed = all_passed && fd.passed();
      }
    }
  }
  std::printf("%s\n", all_passed ? "PASS" : "FAIL");
  return all_passed ? 0 : 1;
}

}  // namespace densenet::cli
