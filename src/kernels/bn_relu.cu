// CUDA twins of bn_relu.cpp's CPU kernels (bn_relu_cuda.h). Each kernel runs bn_relu_cuda_grid.h's
// per-thread function over the channel grid described there; this file adds the launches, the
// block reductions and the choice of grid. ATen's pieces took three kernels for the forward
// (normalise, ReLU) and five passes for a backward (pre-activation, mask, reduce, dx, copy or
// add); here the forward is one pass over the block buffer's prefix, a training backward two
// (sums, then dx with the batch-statistics terms) and an eval backward one (dx needs no sums),
// plus a kernel over the C channels for the affine gradients.

#include "kernels/bn_relu_cuda.h"
#include "kernels/bn_relu_cuda_args.h"
#include "kernels/bn_relu_cuda_grid.h"

#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cub/block/block_reduce.cuh>

#include <cstdint>

namespace densenet::kernels::cuda {

namespace {

using cuda_grid::acc_t;
using cuda_grid::accumulation_type;
using cuda_grid::Affine;
using cuda_grid::BackwardArgs;
using cuda_grid::ChannelGrads;
using cuda_grid::ChannelWalk;
using cuda_grid::DxTerms;
using cuda_grid::in_accumulation_type;
using cuda_grid::kBlocksPerSm;
using cuda_grid::kThreads;
using cuda_grid::Planes;
using cuda_grid::planes_of;
using cuda_grid::Sums;

// ---------------------------------------------------------------------------------------------
// Kernels: grid (C, splits), kThreads threads; block (c, s) takes share s of channel c. Each is
// bounded to kBlocksPerSm resident blocks' registers (32 a thread), the occupancy that
// splits_for plans the grid for: memory-bound loops need many loads in flight.

template <typename T, typename A, typename Index>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    forward_kernel(Planes<const T> x, Planes<T> out, const A* mean, const A* scale, const A* beta,
                   ChannelWalk<Index> walk) {
  const int64_t c = blockIdx.x;
  const Affine<A> affine{mean[c], scale[c], beta[c]};
  cuda_grid::forward_thread<T, A, Index>(x.channel(c), out.channel(c), affine, walk,
                                         static_cast<Index>(blockIdx.y),
                                         static_cast<Index>(threadIdx.x));
}

struct SumPair {
  double dz, dz_xc;
};

struct AddSumPairs {
  __device__ SumPair operator()(const SumPair& a, const SumPair& b) const {
    return {a.dz + b.dz, a.dz_xc + b.dz_xc};
  }
};

/// The block's sums into partials[(2, splits, C)] (and, when `write_eval_dx`, dx = scale * dz).
template <bool kOutputMask, typename T, typename A, typename Index>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    sums_kernel(BackwardArgs<T, A> args, ChannelWalk<Index> walk, double* partials,
                bool write_eval_dx) {
  const int64_t c = blockIdx.x;
  const int64_t split = blockIdx.y;
  const DxTerms<A> terms = cuda_grid::eval_terms(args.gamma[c], args.invstd[c]);
  const Sums<A> mine = args.template channel<kOutputMask>(c).sums(
      walk, static_cast<Index>(split), static_cast<Index>(threadIdx.x), write_eval_dx, terms);
  // CUB's default block reduction (per-warp shuffles, then the warps' results in order): the
  // same order every run.
  using Reduce = cub::BlockReduce<SumPair, kThreads>;
  __shared__ typename Reduce::TempStorage storage;
  const SumPair block = Reduce(storage).Reduce(
      SumPair{static_cast<double>(mine.dz), static_cast<double>(mine.dz_xc)}, AddSumPairs());
  if (threadIdx.x == 0) {
    partials[split * args.channels + c] = block.dz;
    partials[(args.splits + split) * args.channels + c] = block.dz_xc;
  }
}

/// Training: the channel's totals from the partial sums (once per block), then dx with the
/// batch-statistics terms; the first block of each channel writes its affine gradients.
template <bool kOutputMask, typename T, typename A, typename Index>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    dx_kernel(BackwardArgs<T, A> args, ChannelWalk<Index> walk, const double* partials,
              A* grad_gamma, A* grad_beta) {
  const int64_t c = blockIdx.x;
  __shared__ DxTerms<A> shared_terms;
  if (threadIdx.x == 0) {
    const ChannelGrads<A> grads =
        cuda_grid::channel_grads(cuda_grid::channel_totals(partials, args.channels, args.splits, c),
                                 args.gamma[c], args.invstd[c], args.count, args.training);
    shared_terms = grads.terms;
    if (blockIdx.y == 0) {
      grad_gamma[c] = grads.grad_gamma;
      grad_beta[c] = grads.grad_beta;
    }
  }
  __syncthreads();
  const DxTerms<A> terms = shared_terms;
  args.template channel<kOutputMask>(c).dx(walk, static_cast<Index>(blockIdx.y),
                                           static_cast<Index>(threadIdx.x), terms);
}

/// Eval: the affine gradients from the partial sums, one thread per channel.
template <typename A>
__global__ void affine_grads_kernel(const double* partials, int64_t channels, int64_t splits,
                                    const A* gamma, const A* invstd, double count, A* grad_gamma,
                                    A* grad_beta) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  const ChannelGrads<A> grads =
      cuda_grid::channel_grads(cuda_grid::channel_totals(partials, channels, splits, c), gamma[c],
                               invstd[c], count, /*training=*/false);
  grad_gamma[c] = grads.grad_gamma;
  grad_beta[c] = grads.grad_beta;
}

// ---------------------------------------------------------------------------------------------
// Launches

/// The (N, C, H, W) sizes as the grid sees them.
struct GridShape {
  int64_t channels, plane, count, splits;
  dim3 grid() const { return dim3(static_cast<unsigned>(channels), static_cast<unsigned>(splits)); }
};

GridShape grid_shape(const at::Tensor& x) {
  GridShape s;
  s.channels = x.size(1);
  s.plane = x.size(2) * x.size(3);
  s.count = x.size(0) * s.plane;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  s.splits = cuda_grid::splits_for(s.channels, s.count, sms);
  return s;
}

/// Calls launch(walk) with the walk's index type: 32-bit where it holds the values.
template <typename Launch>
void with_walk(const GridShape& s, const Launch& launch) {
  if (cuda_grid::fits_32_bits(s.plane, s.count, s.splits)) {
    launch(cuda_grid::channel_walk<uint32_t>(s.plane, s.count, s.splits));
  } else {
    launch(cuda_grid::channel_walk<uint64_t>(s.plane, s.count, s.splits));
  }
}

template <bool kOutputMask>
std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_y, const at::Tensor* y,
                                            const at::Tensor& x, const at::Tensor& mean,
                                            const at::Tensor& invstd, const at::Tensor& gamma,
                                            const at::Tensor* beta, bool training,
                                            at::Tensor& grad_x, bool accumulate) {
  const c10::cuda::CUDAGuard guard(x.device());
  const GridShape s = grid_shape(x);
  const auto acc_options = gamma.options().dtype(accumulation_type(x));
  if (s.channels == 0 || s.count == 0) {  // no values: zero gradients, dx has no elements
    return {at::zeros({s.channels}, gamma.options()), at::zeros({s.channels}, gamma.options())};
  }
  at::Tensor grad_gamma = at::empty({s.channels}, acc_options);  // written by the kernels
  at::Tensor grad_beta = at::empty({s.channels}, acc_options);
  const cuda_grid::AccumulationParameters p =
      cuda_grid::accumulation_parameters(x, mean, invstd, gamma, beta);
  at::Tensor partials = at::empty({2 * s.splits * s.channels}, x.options().dtype(at::kDouble));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "densenet_bn_relu_backward_cuda", [&] {
        using T = scalar_t;
        using A = acc_t<T>;
        const BackwardArgs<T, A> args =
            cuda_grid::backward_args<T, A>(grad_y, y, x, grad_x, p, s.splits, training, accumulate);
        double* sums = partials.data_ptr<double>();
        with_walk(s, [&](auto walk) {
          using Index = decltype(walk.count);
          sums_kernel<kOutputMask, T, A, Index>
              <<<s.grid(), kThreads, 0, stream>>>(args, walk, sums, /*write_eval_dx=*/!training);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
          if (training) {
            dx_kernel<kOutputMask, T, A, Index><<<s.grid(), kThreads, 0, stream>>>(
                args, walk, sums, grad_gamma.data_ptr<A>(), grad_beta.data_ptr<A>());
          } else {
            const auto blocks = static_cast<unsigned>((s.channels + kThreads - 1) / kThreads);
            affine_grads_kernel<A><<<blocks, kThreads, 0, stream>>>(
                sums, s.channels, s.splits, args.gamma, args.invstd, args.count,
                grad_gamma.data_ptr<A>(), grad_beta.data_ptr<A>());
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      });
  return {grad_gamma.to(gamma.scalar_type()), grad_beta.to(gamma.scalar_type())};
}

bool has_contiguous_planes(const at::Tensor& t) {
  return (t.size(3) == 1 || t.stride(3) == 1) && (t.size(2) == 1 || t.stride(2) == t.size(3));
}

}  // namespace

bool takes(std::initializer_list<const at::Tensor*> tensors) {
  const at::Tensor* data = nullptr;  // the first 4-D tensor
  for (const at::Tensor* t : tensors) {
    if (t->defined() && t->dim() == 4) {
      data = t;
      break;
    }
  }
  if (data == nullptr || !data->is_cuda()) return false;
  const auto type = data->scalar_type();
  if (type != at::kFloat && type != at::kDouble && type != at::kHalf && type != at::kBFloat16) {
    return false;
  }
  for (const at::Tensor* t : tensors) {
    if (!t->defined() || t->device() != data->device()) return false;
    if (t->dim() == 4) {
      if (t->scalar_type() != type || t->sizes() != data->sizes() || !has_contiguous_planes(*t) ||
          at::has_internal_overlap(*t) == at::MemOverlap::Yes) {
        return false;
      }
    } else if (t->dim() != 1 || !at::isFloatingType(t->scalar_type()) ||
               t->numel() != data->size(1)) {
      return false;
    }
  }
  return true;
}

void bn_relu_forward(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& scale,
                     const at::Tensor& beta, at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(x.device());
  const GridShape s = grid_shape(x);
  if (s.channels == 0 || s.count == 0) return;
  const at::Tensor m = in_accumulation_type(x, mean), a = in_accumulation_type(x, scale);
  const at::Tensor b = in_accumulation_type(x, beta);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "densenet_bn_relu_forward_cuda", [&] {
        using T = scalar_t;
        using A = acc_t<T>;
        with_walk(s, [&](auto walk) {
          using Index = decltype(walk.count);
          forward_kernel<T, A, Index><<<s.grid(), kThreads, 0, stream>>>(
              planes_of<const T>(x), planes_of<T>(out), m.data_ptr<A>(), a.data_ptr<A>(),
              b.data_ptr<A>(), walk);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      });
}

std::tuple<at::Tensor, at::Tensor> bn_relu_backward(const at::Tensor& grad_y, const at::Tensor& x,
                                                    const at::Tensor& mean,
                                                    const at::Tensor& invstd,
                                                    const at::Tensor& gamma, const at::Tensor& beta,
                                                    bool training, at::Tensor& grad_x,
                                                    bool accumulate) {
  return backward</*kOutputMask=*/false>(grad_y, nullptr, x, mean, invstd, gamma, &beta, training,
                                         grad_x, accumulate);
}

std::tuple<at::Tensor, at::Tensor> bn_relu_backward_given_output(
    const at::Tensor& grad_y, const at::Tensor& y, const at::Tensor& x, const at::Tensor& mean,
    const at::Tensor& invstd, const at::Tensor& gamma, bool training, at::Tensor& grad_x,
    bool accumulate) {
  return backward</*kOutputMask=*/true>(grad_y, &y, x, mean, invstd, gamma, nullptr, training,
                                        grad_x, accumulate);
}

}  // namespace densenet::kernels::cuda
