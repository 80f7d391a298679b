#include "legacy_command.h"

#include "arguments.h"
#include "child_process.h"
#include "model_arguments.h"

#include "densenet/model/architecture.h"
#include "densenet/tools/benchmark.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/util/threads.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace densenet::cli {

namespace {

std::vector<OptionSpec> bench_specs() {
  std::vector<OptionSpec> specs =
      model_option_specs("modes to measure (default naive,efficient,minimal)");
  specs.push_back({"batch", "LIST", "batch sizes, e.g. 64 or 32,64,128 (default 64)"});
  specs.push_back({"device", "DEV", "cpu (default) or cuda"});
  specs.push_back({"cudnn-benchmark", "", "CUDA: let cuDNN autotune its algorithms (default off)"});
  specs.push_back({"threads", "T", "intra-op threads (default: LibTorch's default)"});
  specs.push_back({"warmup", "W", "untimed steps first (default 1)"});
  specs.push_back({"iters", "K", "timed steps (default 3)"});
  specs.push_back({"max-batch", "", "also find the largest batch that trains within --memory-cap"});
  specs.push_back({"memory-cap", "SIZE", "cap for --max-batch, e.g. 4GiB (default 4GiB)"});
  specs.push_back({"profile", "",
                   "after timing, one more step: self time per operation, summed over threads "
                   "(work inside parallel loops, such as the per-sample GEMMs, counts on every "
                   "thread that ran it)"});
  specs.push_back(
      {"sgemm", "", "also measure the machine's SGEMM rate and each step's share of it"});
  specs.push_back({"json", "", "one JSON object per line per (mode, batch)"});
  specs.push_back({"rss-probe", "",
                   "internal: print the RSS increase of one step (one mode and batch) and exit"});
  specs.push_back({"help", "", "show this help"});
  return specs;
}

void print_profile(const std::vector<OpProfiler::Entry>& entries) {
  double total = 0;
  for (const auto& entry : entries) total += entry.self_ms;
  std::printf("    %-44s %10s %7s %8s\n", "operation (one step, self time, all threads)", "ms", "%",
              "calls");
  double shown = 0;
  for (size_t i = 0; i < entries.size() && i < 16; ++i) {
    shown += entries[i].self_ms;
    std::printf("    %-44s %10.1f %6.1f%% %8lld\n", entries[i].name.substr(0, 44).c_str(),
                entries[i].self_ms, 100 * entries[i].self_ms / total,
                static_cast<long long>(entries[i].calls));
  }
  std::printf("    %-44s %10.1f %6.1f%%\n", "(others)", total - shown,
              100 * (total - shown) / total);
}

}  // namespace

int bench_command(const std::vector<std::string>& raw_args) {
  const std::vector<OptionSpec> specs = bench_specs();
  Arguments args(raw_args, specs);
  if (args.flag("help")) {
    std::cout << "usage: densenet bench --arch NAME [--batch N[,N...]] "
                 "[--memory naive,efficient,minimal] [--device cpu|cuda] [--threads T] "
                 "[--warmup W] [--iters K] [--max-batch --memory-cap 4GiB] [--json]\n\n"
                 "Measures a training step (forward, cross-entropy, backward): mean forward and\n"
                 "backward ms, R = B/F, achieved GFLOP/s, peak tensor memory above the model and\n"
                 "the input, and the process peak RSS increase (measured in a child process with\n"
                 "freed memory returned to the system at once; the timed steps reuse freed memory\n"
                 "as glibc's heap does in training).\n\n"
              << format_options(specs);
    return 0;
  }
  if (!args.positionals().empty()) {
    throw UsageError("bench takes no positional arguments, got '" + args.positionals()[0] + "'");
  }
  const std::string arch = args.value("arch").value_or("densenet-40");
  DenseNetOptions options = model_options_from(args, /*read_memory=*/false);
  const std::vector<MemoryMode> modes =
      parse_memory_modes(args.value("memory").value_or("naive,efficient,minimal"));
  const std::vector<int64_t> batches = parse_int_list(args.value("batch").value_or("64"));
  const torch::Device device = device_from(args);
  const std::string device_name = device.is_cuda() ? "cuda" : "cpu";
  if (args.flag("cudnn-benchmark")) at::globalContext().setBenchmarkCuDNN(true);
  if (auto threads = args.integer("threads")) {
    TORCH_CHECK(*threads >= 1, "--threads must be >= 1, got ", *threads);
    set_num_threads(static_cast<int>(*threads));
  }
  BenchmarkOptions bench;
  bench.device(device);
  bench.warmup(args.integer("warmup").value_or(1));
  bench.iterations(args.integer("iters").value_or(3));
  bench.profile(args.flag("profile"));
  TORCH_CHECK(bench.warmup() >= 0 && bench.iterations() >= 1,
              "--warmup must be >= 0 and --iters >= 1");
  const bool max_batch = args.flag("max-batch");
  if (args.flag("rss-probe")) {
    TORCH_CHECK(modes.size() == 1 && batches.size() == 1,
                "--rss-probe measures one mode at one batch size");
    DenseNetOptions probe_options = options;
    probe_options.memory(modes[0]);
    std::printf("%lld\n",
                static_cast<long long>(measure_step_rss(probe_options, batches[0], bench)));
    return 0;
  }
  // The process RSS of a step is measured in a child process per (mode, batch): this one's
  // heap keeps the blocks that the timed steps freed (see measure_step_rss).
  auto rss_delta_of = [&](MemoryMode mode, int64_t batch) -> int64_t {
    if (!device.is_cpu()) return 0;
    std::vector<std::string> child_args = {"bench"};
    for (size_t i = 0; i < raw_args.size(); ++i) {  // all but --memory and --batch
      const std::string& arg = raw_args[i];
      if (arg == "--memory" || arg == "--batch") {
        ++i;
      } else if (arg.rfind("--memory=", 0) != 0 && arg.rfind("--batch=", 0) != 0) {
        child_args.push_back(arg);
      }
    }
    for (const std::string& extra :
         {std::string("--memory"), memory_mode_name(mode), std::string("--batch"),
          std::to_string(batch), std::string("--rss-probe")}) {
      child_args.push_back(extra);
    }
    return std::stoll(run_this_program(child_args));
  };
  const int64_t cap = parse_byte_size(args.value("memory-cap").value_or("4GiB"));
  const bool json = args.flag("json");
  MemoryTracker::instance();

  double sgemm = 0;
  if (args.flag("sgemm")) {
    for (const int64_t size : {1024, 2048})
      sgemm = std::max(sgemm, measure_sgemm_gflops(size, bench.device()));
    if (json) {
      std::cout << nlohmann::ordered_json{{"sgemm_gflops", sgemm},
                                          {"device", device_name},
                                          {"threads", at::get_num_threads()}}
                       .dump()
                << std::endl;
    } else {
      std::printf("SGEMM (1024/2048 square, best): %.1f GFLOP/s\n", sgemm);
    }
  }
  if (!json) {
    std::printf("%s, %s, %d threads\n", arch.c_str(), device_name.c_str(), at::get_num_threads());
    std::printf("%-10s %6s %10s %10s %6s %9s %12s %12s%s\n", "memory", "batch", "fwd ms", "bwd ms",
                "R=B/F", "GFLOP/s", "peak", "RSS delta", max_batch ? "   max batch" : "");
  }
  for (MemoryMode mode : modes) {
    DenseNetOptions mode_options = options;
    mode_options.memory(mode);
    for (int64_t batch : batches) {
      BenchmarkResult r = benchmark_training_step(mode_options, batch, bench);
      r.rss_delta_bytes = rss_delta_of(mode, batch);
      const int64_t largest = max_batch ? find_max_batch(mode_options, cap, bench) : 0;
      if (json) {
        nlohmann::ordered_json line = {{"arch", arch},
                                       {"depth", plan_architecture(mode_options).depth()},
                                       {"block_config", mode_options.block_config()},
                                       {"memory", r.memory},
                                       {"batch", r.batch},
                                       {"device", device_name},
                                       {"threads", at::get_num_threads()},
                                       {"forward_ms", r.forward_ms},
                                       {"backward_ms", r.backward_ms},
                                       {"peak_bytes", r.peak_bytes},
                                       {"rss_delta_bytes", r.rss_delta_bytes},
                                       {"step_flops", r.step_flops},
                                       {"gflops", r.gflops()}};
        if (max_batch) {
          line["max_batch"] = largest;
          line["memory_cap_bytes"] = cap;
        }
        if (sgemm > 0) line["sgemm_fraction"] = r.gflops() / sgemm;
        if (bench.profile()) {
          nlohmann::ordered_json ops = nlohmann::ordered_json::array();
          for (const auto& entry : r.profile) {
            ops.push_back({{"op", entry.name}, {"self_ms", entry.self_ms}, {"calls", entry.calls}});
          }
          line["profile"] = ops;
        }
        std::cout << line.dump() << std::endl;
      } else {
        std::printf("%-10s %6lld %10.1f %10.1f %6.2f %9.1f %12s %12s", r.memory.c_str(),
                    static_cast<long long>(batch), r.forward_ms, r.backward_ms,
                    r.backward_ms / r.forward_ms, r.gflops(), format_bytes(r.peak_bytes).c_str(),
                    format_bytes(r.rss_delta_bytes).c_str());
        if (max_batch)
          std::printf("   %lld in %s", static_cast<long long>(largest), format_bytes(cap).c_str());
        if (sgemm > 0) std::printf("   %.0f%% of SGEMM", 100 * r.gflops() / sgemm);
        std::printf("\n");
        if (bench.profile()) print_profile(r.profile);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace densenet::cli
