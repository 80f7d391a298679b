#include "densenet/tools/benchmark.h"

#include "densenet/model/densenet.h"
#include "densenet/model/memory_plan.h"
#include "densenet/tools/memory_tracker.h"
#include "densenet/train/amp.h"
#include "kernels/gemm.h"

#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>

#include <malloc.h>

#if defined(DENSENET_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#define DENSENET_HAS_CUDA_ALLOCATOR 1
#else
#define DENSENET_HAS_CUDA_ALLOCATOR 0
#endif

#include <algorithm>
#include <chrono>
#include <optional>

namespace densenet {

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// Bytes allocated by the CUDA caching allocator now and at peak since the last reset.
void reset_cuda_peak(const torch::Device& device) {
#if DENSENET_HAS_CUDA_ALLOCATOR
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#else
  (void)device;
#endif
}

std::pair<int64_t, int64_t> cuda_allocated_bytes(const torch::Device& device) {
#if DENSENET_HAS_CUDA_ALLOCATOR
  const auto stats =
      c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
  const auto& aggregate = stats.allocated_bytes[0];  // StatType::AGGREGATE
  return {aggregate.current, aggregate.peak};
#else
  (void)device;
  TORCH_CHECK(false, "this build of densenet has no CUDA allocator statistics");
#endif
}

void reset_gradients(DenseNet& model) {
  for (auto& param : model->parameters()) param.mutable_grad().reset();
}

struct StepTimes {
  double forward_ms, backward_ms;
};

// `amp`: the autocast dtype, or nullopt for float32 (train::parse_amp).
StepTimes training_step(DenseNet& model, const torch::Tensor& input, const torch::Tensor& target,
                        std::optional<c10::ScalarType> amp = std::nullopt) {
  const auto start = Clock::now();
  torch::Tensor loss;
  {
    const train::AutocastGuard autocast(input.device().type(), amp);
    torch::Tensor logits = model->forward(input);  // (N, classes)
    loss = torch::nn::functional::cross_entropy(logits, target);
  }
  if (input.is_cuda()) torch::cuda::synchronize();
  const double forward_ms = milliseconds_since(start);
  const auto middle = Clock::now();
  loss.backward();
  if (input.is_cuda()) torch::cuda::synchronize();
  return {forward_ms, milliseconds_since(middle)};
}

// Two regimes of glibc's allocator. Timing: freed memory stays in the heap for reuse (no mmap
// for large blocks, no trimming), as a caching allocator keeps it, so that steps measure the
// computation rather than page faults. glibc's defaults would mmap every block above 32 MiB and
// trim the heap's top above 64 MiB free, which page-faults and zeroes tensors afresh on every
// step by the luck of allocation order (our naive mode ran 2.43 s against 1.96 s retained,
// densenet-bc-100 batch 64), and the RSS regime below page-faults everything (6.1 s).
// Measuring memory: freed memory goes back to the system at once (mmap threshold 64 KiB,
// malloc_trim), so that RSS measures live memory. The two cannot share a process in that
// order (see measure_step_rss). bench/compare_pytorch.py does the same for PyTorch.
void use_timing_allocator() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
}

void release_freed_memory() {
  mallopt(M_MMAP_MAX, 65536);  // glibc's default
  mallopt(M_MMAP_THRESHOLD, 64 << 10);
  mallopt(M_TRIM_THRESHOLD, 128 << 10);
  malloc_trim(0);
}

/// A freshly initialised model in training mode with a random batch and targets, on `device`;
/// the same seed gives the same model and data in every measurement.
struct TrainingSetup {
  DenseNet model;
  torch::Tensor input;   // (N, C_in, S, S)
  torch::Tensor target;  // (N,) class indices
};

TrainingSetup make_training_setup(const DenseNetOptions& model_options, int64_t batch,
                                  uint64_t seed, torch::Device device, bool channels_last) {
  torch::manual_seed(seed);
  DenseNet model(model_options);
  model->to(device);
  model->train();
  const int64_t size = model_options.input_size();
  const auto tensor_options = torch::TensorOptions().device(device);
  torch::Tensor input =
      torch::randn({batch, model_options.in_channels(), size, size}, tensor_options);
  torch::Tensor target =
      torch::randint(model_options.num_classes(), {batch}, tensor_options.dtype(torch::kLong));
  if (channels_last) {
    model->set_memory_format(at::MemoryFormat::ChannelsLast);
    input = input.contiguous(at::MemoryFormat::ChannelsLast);
  }
  return {model, input, target};
}

}  // namespace

BenchmarkResult benchmark_training_step(const DenseNetOptions& model_options, int64_t batch,
                                        const BenchmarkOptions& options) {
  TORCH_CHECK(batch >= 1, "batch must be >= 1, got ", batch);
  TORCH_CHECK(options.iterations() >= 1, "iterations must be >= 1");
  MemoryTracker& tracker = MemoryTracker::instance();
  use_timing_allocator();
  const std::optional<c10::ScalarType> amp = train::parse_amp(options.amp());
  auto [model, input, target] = make_training_setup(model_options, batch, options.seed(),
                                                    options.device(), options.channels_last());

  for (int64_t i = 0; i < options.warmup(); ++i) {
    reset_gradients(model);
    training_step(model, input, target, amp);
  }
  reset_gradients(model);

  // Timed steps; the tracked peak (allocator bytes, independent of the malloc regime) too.
  const bool cuda = options.device().is_cuda();
  if (cuda) reset_cuda_peak(options.device());
  const int64_t live_before =
      cuda ? cuda_allocated_bytes(options.device()).first : tracker.current_bytes();
  tracker.reset_peak();
  BenchmarkResult result;
  result.memory = memory_mode_name(model_options.memory());
  result.batch = batch;
  for (int64_t i = 0; i < options.iterations(); ++i) {
    reset_gradients(model);
    const StepTimes times = training_step(model, input, target, amp);
    result.forward_ms += times.forward_ms / options.iterations();
    result.backward_ms += times.backward_ms / options.iterations();
  }
  result.peak_bytes =
      (cuda ? cuda_allocated_bytes(options.device()).second : tracker.peak_bytes()) - live_before;

  result.step_flops = 6.0 * static_cast<double>(model->plan.forward_macs()) * batch;
  if (options.profile()) {
    reset_gradients(model);
    OpProfiler profiler;
    training_step(model, input, target, amp);
    result.profile = profiler.entries();
  }
  return result;
}

int64_t measure_step_rss(const DenseNetOptions& model_options, int64_t batch,
                         const BenchmarkOptions& options) {
  TORCH_CHECK(batch >= 1, "batch must be >= 1, got ", batch);
  TORCH_CHECK(options.device().is_cpu(), "RSS is measured for CPU training steps");
  release_freed_memory();
  const std::optional<c10::ScalarType> amp = train::parse_amp(options.amp());
  auto [model, input, target] = make_training_setup(model_options, batch, options.seed(),
                                                    torch::kCPU, options.channels_last());
  for (int64_t i = 0; i < std::max<int64_t>(1, options.warmup()); ++i) {
    reset_gradients(model);
    training_step(model, input, target, amp);
  }
  reset_gradients(model);
  release_freed_memory();
  const int64_t rss_before = process_rss_bytes();
  reset_process_peak_rss();
  training_step(model, input, target, amp);
  return process_peak_rss_bytes() - rss_before;
}

double measure_sgemm_gflops(int64_t size, torch::Device device) {
  TORCH_CHECK(size >= 1, "matrix size must be >= 1");
  const auto options = torch::TensorOptions().device(device);
  const torch::Tensor a = torch::randn({size, size}, options);
  const torch::Tensor b = torch::randn({size, size}, options);
  torch::Tensor c = torch::empty({size, size}, options);
  // On the CPU the rate of the GEMMs the stages call (oneDNN's, kernels/gemm.h), not at::mm's
  // BLAS: the share of it that a step reaches says how well the stage uses them.
  auto multiply = [&] { device.is_cpu() ? kernels::gemm(a, b, c) : (void)at::mm_out(c, a, b); };
  multiply();  // warm-up: thread pools, GEMM buffers
  double best = 1e300;
  for (int i = 0; i < 5; ++i) {
    if (device.is_cuda()) torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    multiply();
    if (device.is_cuda()) torch::cuda::synchronize();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * static_cast<double>(size) * size * size / best / 1e9;
}

int64_t find_max_batch(const DenseNetOptions& model_options, int64_t cap_bytes,
                       const BenchmarkOptions& options) {
  TORCH_CHECK(cap_bytes > 0, "the memory cap must be positive");
  TORCH_CHECK(options.device().is_cpu(), "--max-batch searches with the CPU memory cap");
  MemoryTracker::instance();
  auto fits = [&](int64_t batch) {
    release_freed_memory();
    ScopedMemoryLimit cap(MemoryTracker::instance().current_bytes() + cap_bytes);
    try {
      auto [model, input, target] = make_training_setup(model_options, batch, options.seed(),
                                                        torch::kCPU, options.channels_last());
      training_step(model, input, target, train::parse_amp(options.amp()));
      return true;
    } catch (const c10::OutOfMemoryError&) {
      return false;
    }
  };
  // A batch norm in training needs more than one value per channel: 1x1 maps start at 2.
  const ArchitecturePlan architecture = plan_architecture(model_options);
  const int64_t smallest = smallest_training_batch(architecture);
  if (!fits(smallest)) return 0;
  // Bracket around the batch the memory plan predicts (parameters, gradients and a little
  // workspace aside), so that only a few steps run at the large sizes; then bisect.
  const StepMemory need =
      plan_step_memory(architecture, model_options.memory(), /*optimizer_copies=*/0,
                       /*input_batches=*/1, c10::DeviceType::CPU, train::parse_amp(options.amp()));
  const int64_t per_sample =
      std::max<int64_t>(1, need.activations_per_sample + need.input_per_sample);
  const int64_t guess = std::max<int64_t>(1, (cap_bytes - need.fixed) / per_sample);
  int64_t good = smallest, bad = 0;
  int64_t probe = std::max<int64_t>(smallest + 1, guess * 95 / 100);
  if (fits(probe)) {
    good = probe;
    for (int64_t next = std::max(good + 1, good * 105 / 100);;
         next = std::max(good + 1, good * 110 / 100)) {
      if (!fits(next)) {
        bad = next;
        break;
      }
      good = next;
    }
  } else {
    bad = probe;
    for (int64_t next = probe * 85 / 100; next > smallest; next = next * 85 / 100) {
      if (fits(next)) {
        good = next;
        break;
      }
      bad = next;
    }
  }
  while (bad - good > 1) {
    const int64_t middle = good + (bad - good) / 2;
    if (fits(middle)) {
      good = middle;
    } else {
      bad = middle;
    }
  }
  return good;
}

}  // namespace densenet
