#pragma once

// The matrix products of the dense stages' CPU kernels (the per-sample 1x1 convolutions of
// kernels/norm_relu_conv1x1.cpp and model/dense_stage.cpp), through oneDNN (Debian's libdnnl 2.6,
// the library under LibTorch's own CPU convolutions), not through the BLAS that ATen's at::mm
// calls. oneDNN picks its kernels from the CPU's features when it runs (AVX2, AVX-512, AVX512-BF16,
// AMX); a BLAS with a fixed CPU table runs generic code on CPUs newer than itself: Debian's
// OpenBLAS 0.3.21 takes Intel's family 6 model 207 (AVX-512 with BF16) for a Prescott and runs
// SSE3 kernels there, which made our efficient step 1.9x slower (1819 vs 965 ms with
// OPENBLAS_CORETYPE=SKYLAKEX; densenet-bc-100, batch 64, 2 threads).
//
// Threads: oneDNN here runs on the OpenMP runtime (libgomp) and splits a GEMM over
// omp_get_max_threads() threads, except inside an active OpenMP parallel region, where it runs on
// the calling thread alone (dnnl_get_current_num_threads in oneDNN's src/common/dnnl_thread.hpp).
// The per-sample GEMMs run inside at::parallel_for loops, so each gets one thread, with no setting
// of ours: what SingleThreadedBlas (util/blas_threads.h) arranges for OpenBLAS, whose pthread pool
// would compete with OpenMP's. It needs oneDNN and our loops to share one OpenMP runtime: both
// link libgomp.so.1, of which a process loads one copy (pip's LibTorch bundles its own, under the
// same soname); tests/kernels/test_gemm.cpp checks it, and that no nested threads start.

#include <torch/types.h>

#include <string>

namespace densenet::kernels {

/// c = a b + beta c, for 2-D CPU tensors a (M, K), b (K, N), c (M, N), read and written in place.
/// Each of a and b is row-major (unit column stride, row stride >= its columns) or the transposed
/// view of one (x.t() for x (K, M) row-major); another layout is copied first. c must be row-major
/// (any row stride >= N: a block of columns of a wider matrix will do).
///
/// dtypes (a and b alike), sums accumulated in float32 (double for double):
///   float32 a, b, c:            dnnl_sgemm
///   bfloat16 a, b, float32 c:   dnnl_gemm_bf16bf16f32 (AVX512-BF16 or AMX where the CPU has
///                               them, emulated on other AVX-512 CPUs); oneDNN 2.6 has none without
///                               AVX-512, and there a and b are widened to float32 (exactly: the
///                               products and sums are the same) for dnnl_sgemm
///   float16 a, b, float32 c:    widened to float32 for dnnl_sgemm (oneDNN 2.6 has no float16
///                               GEMM); the products are exact in float32 all the same
///   16-bit a, b, c of their dtype: as above into a float32 temporary (M, N), rounded once into c;
///                               beta must be 0
///   double a, b, c:             at::mm (BLAS): the float64 gradient checks only
/// Throws c10::Error for other dtypes, mismatched shapes, a c that is not row-major, or a
/// failure oneDNN reports.
void gemm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c,
          float beta = 0.0f);

/// The file of the shared library whose dnnl_sgemm gemm() calls (dladdr), for the test that it is
/// Debian's libdnnl.so.2: pip's LibTorch carries a oneDNN of its own, linked in statically.
std::string gemm_library_path();

/// The version of the oneDNN that gemm() calls ("2.6.3"), and its CPU threading runtime ("OpenMP"
/// or another runtime's name).
std::string gemm_library_version();
std::string gemm_library_runtime();

}  // namespace densenet::kernels
