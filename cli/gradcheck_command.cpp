#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/model/architecture.h"
#include "densenet/tools/gradcheck.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

namespace densenet::cli {

namespace {

struct GradcheckArguments {
  ModelArguments model;
  std::string dtype = "both";
  int64_t batch = 4;
  std::string mode = "both";
  int64_t seed = 0;
  std::string device = "cpu";
  bool no_finite_differences = false;
  bool json = false;
};

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1e", value);
  return text;
}

// The rule that decided the group, in words: a pass should read as a pass.
std::string verdict(const DifferenceSummary& g) {
  if (g.max_rel <= g.tolerance) {
    return std::string("ok: ") + number(g.max_rel) + " <= " + number(g.tolerance) + " of naive";
  }
  const double allowed = std::max(
      {g.tolerance, DifferenceSummary::kFloat32Slack * g.naive_rel_to_float64, g.kink_allowance});
  const std::string rule = number(g.mode_rel_to_float64) + " from float64 " +
                           (g.passed() ? "<= " : "> ") + "max(20 x naive's " +
                           number(g.naive_rel_to_float64) + ", kink allowance " +
                           number(g.kink_allowance) + ") = " + number(allowed);
  if (g.mode_rel_to_float64 < 0) {
    return "FAIL: " + number(g.max_rel) + " > " + number(g.tolerance) + " of naive";
  }
  return std::string(g.passed() ? "ok by the float32 rule: " : "FAIL: ") + rule + " (" +
         number(g.max_rel) + " from naive)";
}

void print_comparison(const ModeComparison& comparison) {
  std::printf("%s: %s\n", comparison.description.c_str(), comparison.passed() ? "PASS" : "FAIL");
  for (const auto& group : comparison.groups) {
    std::printf("  %-22s %s  [max abs %.1e, worst: %s]\n", group.group.c_str(),
                verdict(group).c_str(), group.max_abs, group.worst_tensor.c_str());
  }
}

nlohmann::ordered_json optional_number(double value) {
  return value < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(value);
}

nlohmann::ordered_json comparison_json(const ModeComparison& comparison) {
  nlohmann::ordered_json groups = nlohmann::ordered_json::array();
  for (const auto& g : comparison.groups) {
    groups.push_back({{"group", g.group},
                      {"passed", g.passed()},
                      {"rule", verdict(g)},
                      {"max_abs", g.max_abs},
                      {"max_rel", g.max_rel},
                      {"tolerance", g.tolerance},
                      {"mode_rel_to_float64", optional_number(g.mode_rel_to_float64)},
                      {"naive_rel_to_float64", optional_number(g.naive_rel_to_float64)},
                      {"kink_allowance", g.kink_allowance},
                      {"worst_tensor", g.worst_tensor}});
  }
  return {
      {"comparison", comparison.description}, {"passed", comparison.passed()}, {"groups", groups}};
}

int run_gradcheck(const GradcheckArguments& args) {
  const DenseNetOptions options = model_options_from(args.model, /*read_memory=*/false);
  const std::vector<MemoryMode> modes =
      memory_modes_from(args.model.memory.value_or("efficient,minimal"));
  for (MemoryMode mode : modes) {
    if (mode == MemoryMode::kNaive) {
      throw UsageError("--memory naive: naive is the reference; check efficient or minimal");
    }
  }
  std::vector<torch::Dtype> dtypes;
  if (args.dtype == "float32" || args.dtype == "both") dtypes.push_back(torch::kFloat32);
  if (args.dtype == "float64" || args.dtype == "both") dtypes.push_back(torch::kFloat64);
  std::vector<bool> train_modes;
  if (args.mode == "train" || args.mode == "both") train_modes.push_back(true);
  if (args.mode == "eval" || args.mode == "both") train_modes.push_back(false);
  const int64_t batch = args.batch;
  if (args.mode != "eval") {  // train mode normalises with the batch's statistics
    try {
      check_batch_norm_values(plan_architecture(options), batch);
    } catch (const c10::ValueError& error) {
      throw UsageError(error.what_without_backtrace());
    }
  }
  const int64_t seed = args.seed;
  const torch::Device device = device_from(args.device);
  // TF32 convolutions/matmuls would round float32 inputs to 10-bit mantissas: the float32
  // comparison is about the memory modes, not about TF32.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);

  bool all_passed = true;
  // Progress on stderr: a deep network's check takes minutes, and stdout stays the report.
  const size_t total =
      modes.size() * train_modes.size() * (dtypes.size() + (args.no_finite_differences ? 0 : 1));
  size_t step = 0;
  auto progress = [&](const std::string& what) {
    std::fprintf(stderr, "gradcheck [%zu/%zu] %s ...\n", ++step, total, what.c_str());
  };
  for (MemoryMode mode : modes) {
    for (torch::Dtype type : dtypes) {
      for (bool train : train_modes) {
        progress(memory_mode_name(mode) + " vs naive, " + (train ? "train" : "eval") + ", " +
                 (type == torch::kFloat32 ? "float32" : "float64"));
        const ModeComparison comparison = compare_memory_modes(
            options, mode,
            ModeComparisonOptions().batch(batch).dtype(type).train(train).seed(seed).device(
                device));
        if (args.json) {
          std::cout << comparison_json(comparison).dump() << std::endl;
        } else {
          print_comparison(comparison);
        }
        all_passed = all_passed && comparison.passed();
      }
    }
  }
  if (!args.no_finite_differences) {
    // The same kind of network (layer type, stem, compression, dropout), tiny, in double.
    DenseNetOptions tiny = options;
    tiny.num_init_features(4).growth_rate(3).block_config({2, 2}).num_classes(3).input_size(
        options.uses_small_stem() ? 8 : 40);
    if (tiny.bn_size() > 0) tiny.bn_size(2);
    for (MemoryMode mode : modes) {
      for (bool train : train_modes) {
        progress(std::string("finite differences, ") + memory_mode_name(mode) + ", " +
                 (train ? "train" : "eval"));
        const FiniteDifferenceResult fd = finite_difference_check(tiny, mode, train, seed);
        all_passed = all_passed && fd.passed();
        if (args.json) {
          std::cout << nlohmann::ordered_json{{"finite_differences", memory_mode_name(mode)},
                                              {"train", train},
                                              {"passed", fd.passed()},
                                              {"max_rel_error", fd.max_rel_error},
                                              {"tolerance", fd.tolerance},
                                              {"checked", fd.checked},
                                              {"worst", fd.worst}}
                           .dump()
                    << std::endl;
          continue;
        }
        std::printf(
            "finite differences, %s, %s, float64: %s: max rel error %.1e %s %.0e over %lld "
            "entries [worst: %s]\n",
            memory_mode_name(mode).c_str(), train ? "train" : "eval", fd.passed() ? "PASS" : "FAIL",
            fd.max_rel_error, fd.passed() ? "<=" : ">", fd.tolerance,
            static_cast<long long>(fd.checked), fd.worst.c_str());
      }
    }
  }
  if (args.json) {
    std::cout << nlohmann::ordered_json{{"passed", all_passed}}.dump() << std::endl;
  } else {
    std::printf("%s\n", all_passed ? "PASS" : "FAIL");
  }
  return all_passed ? 0 : 1;
}

}  // namespace

void add_gradcheck_command(CLI::App& app) {
  auto args = std::make_shared<GradcheckArguments>();
  CLI::App* command = add_command(app, "gradcheck", "check efficient/minimal modes against naive",
                                  [args] { return run_gradcheck(*args); });
  command->footer(
      "Builds a naive model and an efficient/minimal one with the same weights and\n"
      "non-trivial running statistics, runs one training or eval step on both and compares\n"
      "the output, the input gradient, every parameter gradient and the state dict after\n"
      "the step. Each group passes within a tolerance of naive relative to the tensor's\n"
      "scale (float64 1e-10, float32 1e-5), or, for float32 gradients, by the float32 rule:\n"
      "no further from a float64 run than 20x naive's own distance or a ReLU-kink allowance\n"
      "of 3e-2 (float32 training of deep DenseNets amplifies rounding; exactness is proven\n"
      "in float64). The output names the rule that decided. Then finite differences in\n"
      "double on a tiny network of the same kind (on the CPU). With --device cuda both\n"
      "models run on the GPU with TF32 off. Progress goes to stderr. Exits 1 on any FAIL.");
  ModelOptionSettings model;
  model.memory_list_help = "modes to check against naive (default efficient,minimal)";
  add_model_options(*command, args->model, model);
  command->add_option("--dtype", args->dtype, "float32, float64 or both")
      ->type_name("TYPE")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "float64", "both"}));
  command->add_option("--batch", args->batch, "batch size")
      ->type_name("N")
      ->capture_default_str()
      ->check(integer_in(1, int64_t{1} << 20));
  command->add_option("--mode", args->mode, "train, eval or both")
      ->type_name("WHICH")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "eval", "both"}));
  command->add_option("--seed", args->seed, "random seed")->type_name("S")->capture_default_str();
  command
      ->add_option("--device", args->device,
                   "cpu, cuda or cuda:N; TF32 is turned off for the check")
      ->type_name("DEV")
      ->capture_default_str();
  command->add_flag("--no-finite-differences", args->no_finite_differences,
                    "skip the finite-difference check");
  command->add_flag("--json", args->json,
                    "one JSON object per line per comparison, then {\"passed\": ...}");
}

}  // namespace densenet::cli
