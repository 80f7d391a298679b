#include "child_process.h"
#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/model/architecture.h"
#include "densenet/model/memory_plan.h"
#include "densenet/tools/benchmark.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/amp.h"
#include "densenet/util/machine.h"
#include "densenet/util/threads.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <new>
#include <sstream>

namespace densenet::cli {

namespace {

struct BenchArguments {
  ModelArguments model;
  std::string batch = "64";
  std::string device = "cpu";
  bool cudnn_benchmark = false;
  std::optional<int64_t> threads;
  int64_t warmup = 1;
  int64_t iters = 3;
  bool max_batch = false;
  std::string memory_cap = "4GiB";
  bool profile = false;
  bool channels_last = false;
  std::string amp = "none";
  bool sgemm = false;
  bool json = false;
  bool rss_probe = false;
};

constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

// The device and autocast dtype a step runs with: they set its activations' element size.
struct StepKind {
  c10::DeviceType device = c10::DeviceType::CPU;
  std::optional<c10::ScalarType> amp;  // nullopt: amp none
};

// What a training step of bench needs at `batch`: the one prediction train and bench share
// (no optimiser state; one input batch).
StepMemory step_need(const DenseNetOptions& options, MemoryMode mode, const StepKind& kind) {
  return plan_step_memory(plan_architecture(options), mode, /*optimizer_copies=*/0,
                          /*input_batches=*/1, kind.device, kind.amp);
}

// Refuses a measurement that cannot fit before it starts (the kernel's OOM killer would end
// the process without a word), with the numbers and what would fit.
void check_fits(const DenseNetOptions& options, MemoryMode mode, int64_t batch,
                const AvailableMemory& available, const StepKind& kind) {
  if (available.bytes <= 0) return;
  const StepMemory need = step_need(options, mode, kind);
  const int64_t bytes = need.bytes(batch);
  if (bytes <= available.bytes) return;
  const int64_t per_sample = need.activations_per_sample + need.input_per_sample;
  std::string message = memory_mode_name(mode) + " at --batch " + std::to_string(batch) +
                        " needs about " +
                        (bytes == kUnbounded ? "more than 8 EiB" : format_bytes(bytes)) +
                        " (memory plan: " + format_bytes(per_sample) + " per sample), but " +
                        format_bytes(available.bytes) + " is available (" + available.source + ")";
  const int64_t fitting =
      available.bytes > need.fixed ? (available.bytes - need.fixed) / per_sample : 0;
  message += fitting >= 1 ? "; use --batch " + std::to_string(fitting) + " or less" : "";
  for (MemoryMode leaner : {MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    if (leaner <= mode) continue;
    const int64_t lean = step_need(options, leaner, kind).bytes(batch);
    message += "; --memory " + memory_mode_name(leaner) + " needs about " + format_bytes(lean);
    break;
  }
  throw UsageError(message);
}

// Refuses a --memory-cap that no training step fits before anything runs: a search that could
// only answer "none" means the cap is the mistake. A step certainly allocates the parameters
// and their gradients, whatever its activations need.
void check_cap_fits_a_step(const DenseNetOptions& options, const std::vector<MemoryMode>& modes,
                           int64_t cap, const std::string& cap_text, const StepKind& kind) {
  const MemoryMode leanest = *std::max_element(modes.begin(), modes.end());
  const StepMemory need = step_need(options, leanest, kind);
  if (need.fixed <= cap) return;
  throw UsageError("--memory-cap " + cap_text +
                   " is less than any training step needs: the parameters and their gradients "
                   "alone take " +
                   format_bytes(need.fixed) + " (the memory plan puts a step of " +
                   memory_mode_name(leanest) + " at batch 1 at about " +
                   format_bytes(need.bytes(1)) + "); give a larger --memory-cap");
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

int run_bench(const BenchArguments& args) {
  const std::string arch = args.model.label();
  const std::string overrides = args.model.overrides_text();
  DenseNetOptions options = model_options_from(args.model, /*read_memory=*/false);
  const std::vector<MemoryMode> modes = memory_modes_from(
      args.model.memory.value_or(args.channels_last ? "naive" : "naive,efficient,minimal"));
  for (const MemoryMode mode : modes) {
    if (args.channels_last && mode != MemoryMode::kNaive) {
      throw UsageError("--channels-last applies to --memory naive only (the " +
                       memory_mode_name(mode) + " mode's stages keep NCHW channel planes)");
    }
  }
  std::optional<c10::ScalarType> amp;
  try {
    amp = train::parse_amp(args.amp);
  } catch (const c10::Error&) {
    throw UsageError("--amp: unknown value '" + args.amp + "': use one of none, fp16, bf16");
  }
  std::vector<int64_t> batches;
  try {
    batches = parse_int_list(args.batch);
  } catch (const c10::Error&) {  // its message's example is a block configuration's
    throw UsageError(
        "--batch: expected a batch size or a comma-separated list of them such as "
        "32 or 16,32,64, got '" +
        args.batch + "'");
  }
  for (const int64_t batch : batches) {
    if (batch < 1) {
      throw UsageError("--batch: batch sizes must be >= 1, got " + std::to_string(batch) +
                       (batches.size() > 1 ? " in " + args.batch : ""));
    }
    try {
      check_batch_norm_values(plan_architecture(options), batch);
    } catch (const c10::ValueError& error) {
      throw UsageError(std::string("--batch ") + std::to_string(batch) + ": " +
                       error.what_without_backtrace());
    }
  }
  const torch::Device device = device_from(args.device);
  const std::string device_name = device.str();  // "cpu", "cuda" or "cuda:N", as given
  if (amp && !train::autocast_supported(device.type(), *amp)) {
    throw UsageError("--amp " + args.amp + " on device " + device_name +
                     ": this LibTorch (" TORCH_VERSION ") cannot autocast to " +
                     c10::toString(*amp) + " there; use --amp bf16");
  }
  if (args.cudnn_benchmark) {
    if (!device.is_cuda()) throw UsageError("--cudnn-benchmark applies to --device cuda only");
    at::globalContext().setBenchmarkCuDNN(true);
  }
  // LibTorch's own default is 1 thread on some machines (OMP_NUM_THREADS unset in a
  // container); a benchmark should use the CPUs it was given unless told otherwise.
  const int threads = args.threads ? static_cast<int>(*args.threads) : usable_cpus();
  const std::string threads_source =
      args.threads ? "--threads" : "default: the CPUs this process may use";
  set_num_threads(threads);
  BenchmarkOptions bench;
  bench.device(device);
  bench.warmup(args.warmup);
  bench.iterations(args.iters);
  bench.profile(args.profile);
  bench.channels_last(args.channels_last);
  bench.amp(args.amp);
  int64_t cap = 0;
  try {
    cap = parse_byte_size(args.memory_cap);
  } catch (const c10::Error& error) {
    throw UsageError(std::string("--memory-cap: ") + error.what_without_backtrace());
  }
  if (args.max_batch && cap <= 0) {
    throw UsageError("--memory-cap must be a positive size such as 4GiB, got " + args.memory_cap);
  }
  if (args.rss_probe) {
    if (modes.size() != 1 || batches.size() != 1) {
      throw UsageError("--rss-probe measures one mode at one batch size");
    }
    DenseNetOptions probe_options = options;
    probe_options.memory(modes[0]);
    std::printf("%lld\n",
                static_cast<long long>(measure_step_rss(probe_options, batches[0], bench)));
    return 0;
  }
  // Refuse what cannot fit before printing anything but the refusal.
  const StepKind kind{device.type(), amp};
  const AvailableMemory available = device.is_cpu() ? available_memory() : AvailableMemory{};
  for (MemoryMode mode : modes) {
    DenseNetOptions mode_options = options;
    mode_options.memory(mode);
    for (int64_t batch : batches) check_fits(mode_options, mode, batch, available, kind);
  }
  if (args.max_batch) check_cap_fits_a_step(options, modes, cap, args.memory_cap, kind);
  if (args.max_batch && available.bytes > 0 && cap > available.bytes) {
    throw UsageError("--memory-cap " + format_bytes(cap) + " is more than the " +
                     format_bytes(available.bytes) + " available (" + available.source +
                     "); give a smaller --memory-cap");
  }
  // The process RSS of a step is measured in a child process per (mode, batch): this one's
  // heap keeps the blocks that the timed steps freed (see measure_step_rss).
  auto rss_delta_of = [&](MemoryMode mode, int64_t batch) -> int64_t {
    if (!device.is_cpu()) return 0;
    std::vector<std::string> child_args = {"bench", "--arch", args.model.arch};
    std::istringstream overrides(args.model.overrides_text());
    for (std::string token; overrides >> token;) child_args.push_back(token);
    for (const std::string& extra :
         {std::string("--threads"), std::to_string(threads), std::string("--warmup"),
          std::to_string(args.warmup), std::string("--iters"), std::to_string(args.iters),
          std::string("--memory"), memory_mode_name(mode), std::string("--batch"),
          std::to_string(batch), std::string("--rss-probe")}) {
      child_args.push_back(extra);
    }
    if (args.channels_last) child_args.emplace_back("--channels-last");
    if (amp) child_args.insert(child_args.end(), {"--amp", args.amp});
    return std::stoll(run_this_program(child_args));
  };
  const bool json = args.json;
  const bool max_batch = args.max_batch;
  MemoryTracker::instance();

  double sgemm = 0;
  if (args.sgemm) {
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
    // --channels-last without --memory measures naive alone: say so where the rows are read.
    const std::string layout =
        !args.channels_last ? ""
        : args.model.memory ? ", channels-last"
                            : ", channels-last (memory naive only: the efficient and minimal "
                              "stages keep NCHW planes)";
    std::printf(
        "%s, %s, %d thread%s (%s)%s%s\n", arch.c_str(), device_name.c_str(), at::get_num_threads(),
        at::get_num_threads() == 1 ? "" : "s", threads_source.c_str(),
        amp ? (", amp " + args.amp + " autocast (float32 weights)").c_str() : "", layout.c_str());
    std::printf("%-10s %6s %10s %10s %6s %9s %12s %12s%s\n", "memory", "batch", "fwd ms", "bwd ms",
                "R=B/F", "GFLOP/s", "peak", "RSS delta", max_batch ? "   max batch" : "");
    std::fflush(stdout);
  }
  const size_t total = modes.size() * batches.size();
  size_t step = 0;
  bool any_fits = false;  // --max-batch: some mode trains a batch within the cap
  for (MemoryMode mode : modes) {
    DenseNetOptions mode_options = options;
    mode_options.memory(mode);
    for (int64_t batch : batches) {
      // Progress on stderr: a large configuration takes minutes per row.
      std::fprintf(stderr,
                   "bench [%zu/%zu] %s, batch %lld: %lld warm-up + %lld timed steps%s ...\n",
                   ++step, total, memory_mode_name(mode).c_str(), static_cast<long long>(batch),
                   static_cast<long long>(args.warmup), static_cast<long long>(args.iters),
                   device.is_cpu() ? ", then one in a child process for RSS" : "");
      BenchmarkResult r;
      try {
        r = benchmark_training_step(mode_options, batch, bench);
      } catch (const std::bad_alloc&) {
        TORCH_CHECK(false, "out of memory allocating a training step's tensors (",
                    memory_mode_name(mode), ", batch ", batch, ", planned ",
                    format_bytes(step_need(mode_options, mode, kind).bytes(batch)),
                    "); use a smaller --batch or --memory efficient");
      }
      r.rss_delta_bytes = rss_delta_of(mode, batch);
      const int64_t largest = max_batch ? find_max_batch(mode_options, cap, bench) : 0;
      any_fits = any_fits || largest > 0;
      if (json) {
        nlohmann::ordered_json line = {
            {"arch", args.model.arch},
            {"overrides", overrides.empty() ? nlohmann::ordered_json(nullptr)
                                            : nlohmann::ordered_json(overrides)},
            {"depth", plan_architecture(mode_options).depth()},
            {"block_config", mode_options.block_config()},
            {"memory", r.memory},
            {"batch", r.batch},
            {"device", device_name},
            {"threads", at::get_num_threads()},
            {"amp", args.amp},
            {"channels_last", args.channels_last},
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
        if (max_batch) {
          const std::string fitting = largest > 0 ? std::to_string(largest) : "none";
          std::printf("   %s in %s", fitting.c_str(), format_bytes(cap).c_str());
        }
        if (sgemm > 0) std::printf("   %.0f%% of SGEMM", 100 * r.gflops() / sgemm);
        std::printf("\n");
        if (bench.profile()) print_profile(r.profile);
        std::fflush(stdout);
      }
    }
  }
  if (max_batch && !any_fits) {
    throw UsageError("--memory-cap " + args.memory_cap + ": no mode trains " + arch +
                     " within it, not even at batch " +
                     std::to_string(smallest_training_batch(plan_architecture(options))) +
                     "; give a larger --memory-cap");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArguments>();
  CLI::App* command = add_command(app, "bench", "time a training step and measure its peak memory",
                                  [args] { return run_bench(*args); });
  command->footer(
      "Measures a training step (forward, cross-entropy, backward): mean forward and\n"
      "backward ms, R = B/F, achieved GFLOP/s, peak tensor memory above the model and\n"
      "the input, and the process peak RSS increase (measured in a child process with\n"
      "freed memory returned to the system at once; the timed steps reuse freed memory\n"
      "as glibc's heap does in training). A configuration that the memory plan says cannot\n"
      "fit in the available memory is refused before it runs. Progress goes to stderr.");
  ModelOptionSettings model;
  model.memory_list_help = "modes to measure (default naive,efficient,minimal)";
  add_model_options(*command, args->model, model);
  command->add_option("--batch", args->batch, "batch sizes, e.g. 64 or 32,64,128")
      ->type_name("LIST")
      ->capture_default_str();
  command->add_option("--device", args->device, "cpu, cuda or cuda:N")
      ->type_name("DEV")
      ->capture_default_str();
  command->add_flag("--cudnn-benchmark", args->cudnn_benchmark,
                    "CUDA: let cuDNN autotune its algorithms (default off)");
  command
      ->add_option("--threads", args->threads,
                   "intra-op threads (default: the CPUs this process may use)")
      ->type_name("T")
      ->check(integer_in(1, 4096));
  command->add_option("--warmup", args->warmup, "untimed steps first")
      ->type_name("W")
      ->capture_default_str()
      ->check(integer_in(0, int64_t{1000000}));
  command->add_option("--iters", args->iters, "timed steps")
      ->type_name("K")
      ->capture_default_str()
      ->check(integer_in(1, int64_t{1000000}));
  CLI::Option* max_batch =
      command->add_flag("--max-batch", args->max_batch,
                        "also find the largest batch that trains within --memory-cap");
  command->add_option("--memory-cap", args->memory_cap, "cap for --max-batch, e.g. 4GiB")
      ->type_name("SIZE")
      ->capture_default_str()
      ->needs(max_batch);
  command->add_flag("--channels-last", args->channels_last,
                    "NHWC weights and activations (--memory naive only)");
  command->add_option("--amp", args->amp, "mixed precision: none, fp16 or bf16 (as train's amp)")
      ->type_name("DTYPE")
      ->capture_default_str();
  command->add_flag("--profile", args->profile,
                    "after timing, one more step: self time per operation, summed over threads "
                    "(work inside parallel loops, such as the per-sample GEMMs, counts on every "
                    "thread that ran it)");
  command->add_flag("--sgemm", args->sgemm,
                    "also measure the machine's SGEMM rate (on the CPU oneDNN's, which the "
                    "stages' GEMMs call) and each step's share of it");
  command->add_flag("--json", args->json, "one JSON object per line per (mode, batch)");
  // Internal: the child process that measures one step's RSS (see run_bench).
  command->add_flag("--rss-probe", args->rss_probe)->group("");
}

}  // namespace densenet::cli
