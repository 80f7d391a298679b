#pragma once

#include "densenet/model/options.h"
#include "densenet/tools/op_profiler.h"

#include <torch/types.h>

#include <string>
#include <vector>

namespace densenet {

struct BenchmarkOptions {
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  TORCH_ARG(int64_t, warmup) = 1;
  TORCH_ARG(int64_t, iterations) = 3;
  TORCH_ARG(uint64_t, seed) = 0;
  /// After the timed steps, one more step under an OpProfiler (so that its overhead never
  /// touches the timings): self time per operation.
  TORCH_ARG(bool, profile) = false;
  /// NHWC weights and input (DenseNetImpl::set_memory_format; memory mode naive only).
  TORCH_ARG(bool, channels_last) = false;
  /// Mixed precision as the `amp` training key (train/amp.h): "none", "fp16" or "bf16". The
  /// forward and the loss run under autocast, backward outside it, and the parameters stay
  /// float32, as torch.autocast's documented training step does. Throws c10::Error (from the
  /// step) when this LibTorch's autocast cannot run that dtype on the device.
  TORCH_ARG(std::string, amp) = "none";
};

/// One training step (forward, cross-entropy, backward) measured after warm-up.
struct BenchmarkResult {
  std::string memory;  // mode name
  int64_t batch = 0;
  double forward_ms = 0;   // mean over iterations
  double backward_ms = 0;  // mean over iterations
  /// Peak tracked allocator bytes during a step above what was live before it (parameters,
  /// buffers and the input batch); gradients allocated by the step count. CPU: the tracking
  /// allocator; CUDA: the caching allocator's peak.
  int64_t peak_bytes = 0;
  /// CPU: process peak RSS increase during a step, from measure_step_rss (the caller fills it
  /// in: it needs a fresh process); 0 when not measured.
  int64_t rss_delta_bytes = 0;
  double step_flops = 0;  // 2 * 3 * forward multiply-adds * batch
  double gflops() const { return step_flops / ((forward_ms + backward_ms) * 1e6); }
  std::vector<OpProfiler::Entry> profile;  // with BenchmarkOptions::profile, one step
};

/// Builds the model in `options.memory()` mode and measures it at `batch`.
BenchmarkResult benchmark_training_step(const DenseNetOptions& model, int64_t batch,
                                        const BenchmarkOptions& options);

/// The machine's single-precision GEMM rate in GFLOP/s through LibTorch's matmul (BLAS on the
/// CPU), for square matrices of `size`: the best of a few timed products after a warm-up. The
/// yardstick for a training step's GFLOP/s.
/// CPU: peak RSS increase of the process during one training step after warm-up, with freed
/// memory returned to the system at once so that RSS tracks live memory. Call it in a process
/// that has not yet run steps in the timing regime of benchmark_training_step: glibc keeps the
/// blocks such steps freed in its heap and hands them out again, and those then stay resident
/// when freed, so RSS would count memory that is no longer live. `densenet bench` runs it in a
/// child process per measurement; bench/compare_pytorch.py does the same for PyTorch.
int64_t measure_step_rss(const DenseNetOptions& model, int64_t batch,
                         const BenchmarkOptions& options);

/// The best of five size x size float32 matrix products, in GFLOP/s: on the CPU through oneDNN
/// (the GEMMs of the stages' kernels), on CUDA through at::mm (cuBLAS).
double measure_sgemm_gflops(int64_t size, torch::Device device);

/// The largest batch whose training step fits in `cap_bytes` of tracked CPU tensor memory
/// (model included): bracketed around the batch the memory plan predicts, then bisected, so
/// that only a few steps run at large batches; 0 if not even the smallest batch that can train
/// fits (smallest_training_batch: 1, or 2 when the last block's maps are 1x1).
int64_t find_max_batch(const DenseNetOptions& model, int64_t cap_bytes,
                       const BenchmarkOptions& options);

}  // namespace densenet
