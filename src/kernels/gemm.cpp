#include "kernels/gemm.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

// oneDNN's C functions, as oneDNN 2.6's dnnl.h declares them (3.x's are the same): row-major
// matrices, dnnl_dim_t = int64_t, bfloat16 passed as its 16 bits, and dnnl_status_t an int-sized
// enum (0 success, 3 unimplemented). dnnl_gemm_bf16bf16f32 is exported by libdnnl.so.2 but
// declared in no public header (oneDNN's own tests declare it so,
// tests/gtests/test_gemm_common.hpp); and pip's LibTorch puts the headers of its own oneDNN (3.x)
// on the include path ahead of Debian's 2.6 ones: hence no <oneapi/dnnl/dnnl.h> here.
struct densenet_dnnl_version {  // dnnl_version_t
  int major, minor, patch;
  const char* hash;
  unsigned cpu_runtime, gpu_runtime;
};
using DnnlVersion = const densenet_dnnl_version* (*)();
using DnnlSgemm = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                          float* c, int64_t ldc);
using DnnlGemmBf16 = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                             const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb,
                             float beta, float* c, int64_t ldc);

namespace densenet::kernels {

namespace {

constexpr int kDnnlSuccess = 0;
constexpr int kDnnlUnimplemented = 3;
constexpr unsigned kDnnlRuntimeOmp = 2;  // DNNL_RUNTIME_OMP

/// Debian's libdnnl.so.2, opened by us with RTLD_DEEPBIND rather than linked, and its functions.
/// Why: oneDNN's C++ internals leave vague-linkage (weak) symbols in its dynamic symbol table,
/// and pip's LibTorch exports the same-named ones of its own oneDNN 3.x from libtorch_cpu.so,
/// which a program loads first: the std::call_once thunks of gemm_info_t<...>::jit_init()'s
/// lambdas among them. Linked the ordinary way, libdnnl.so.2 bound those to libtorch_cpu.so's,
/// so its GEMMs' one-time set-up ran oneDNN 3.x's code, which filled 3.x's kernel tables and
/// left 2.6's empty; every dnnl_sgemm then returned 3 (unimplemented). RTLD_DEEPBIND binds the
/// library's references to its own definitions (and its dependencies') before the program's;
/// its dependency libgomp.so.1 is the copy the process has already loaded, so our OpenMP loops
/// and oneDNN still share one runtime. RTLD_LOCAL keeps its symbols out of everyone else's
/// lookups in turn. (With Debian's LibTorch, which links this same library, dlopen returns the
/// copy already loaded.) The test Gemm.OneDnnBindsToItself checks the bindings.
struct OneDnn {
  DnnlVersion version = nullptr;
  DnnlSgemm sgemm = nullptr;
  DnnlGemmBf16 gemm_bf16 = nullptr;
};

void* dnnl_function(void* library, const char* name) {
  void* function = dlsym(library, name);
  TORCH_CHECK(function != nullptr, "oneDNN: ", DENSENET_DNNL_LIBRARY, " has no ", name);
  return function;
}

const OneDnn& one_dnn() {
  static const OneDnn loaded = [] {
    void* library = dlopen(DENSENET_DNNL_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    TORCH_CHECK(library != nullptr, "oneDNN: cannot load ", DENSENET_DNNL_LIBRARY, ": ", dlerror());
    OneDnn dnnl;
    dnnl.version = reinterpret_cast<DnnlVersion>(dnnl_function(library, "dnnl_version"));
    dnnl.sgemm = reinterpret_cast<DnnlSgemm>(dnnl_function(library, "dnnl_sgemm"));
    dnnl.gemm_bf16 =
        reinterpret_cast<DnnlGemmBf16>(dnnl_function(library, "dnnl_gemm_bf16bf16f32"));
    return dnnl;
  }();
  return loaded;
}

/// The leading dimension of a (rows, cols) matrix with strides (s0, s1) if element (i, j) is at
/// i * ld + j with ld >= cols, as a row-major GEMM operand must be; 0 if it is not.
int64_t row_major_ld(int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  if (cols > 1 && s1 != 1) return 0;
  if (rows == 1) return std::max<int64_t>(1, cols);  // one row: its stride is never used
  return s0 >= std::max<int64_t>(1, cols) ? s0 : 0;
}

/// A matrix (rows, cols) as oneDNN's row-major GEMMs take it: `data` itself ('N') or the
/// transpose of a row-major (cols, rows) matrix ('T'), with that matrix's leading dimension.
struct Operand {
  torch::Tensor data;
  char trans = 'N';
  int64_t ld = 1;
};

Operand operand(const torch::Tensor& t) {
  const int64_t rows = t.size(0), cols = t.size(1);
  if (const int64_t ld = row_major_ld(rows, cols, t.stride(0), t.stride(1))) return {t, 'N', ld};
  if (const int64_t ld = row_major_ld(cols, rows, t.stride(1), t.stride(0))) return {t, 'T', ld};
  return {t.contiguous(), 'N', std::max<int64_t>(1, cols)};
}

void check(int status, const char* function) {
  TORCH_CHECK(status == kDnnlSuccess, "oneDNN's ", function, " failed with status ", status,
              " (library ", gemm_library_path(), ")");
}

bool is_16_bit(torch::ScalarType type) {
  return type == torch::kBFloat16 || type == torch::kHalf;
}

/// c (float32, row-major with leading dimension ldc) = a b + beta c with float32 a and b.
void sgemm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c, int64_t ldc,
           float beta) {
  const Operand x = operand(a), y = operand(b);
  check(one_dnn().sgemm(x.trans, y.trans, a.size(0), b.size(1), a.size(1), 1.0f,
                        x.data.data_ptr<float>(), x.ld, y.data.data_ptr<float>(), y.ld, beta,
                        c.data_ptr<float>(), ldc),
        "dnnl_sgemm");
}

/// The same with bfloat16 a and b: oneDNN's bf16 GEMM, or on CPUs where oneDNN 2.6 has none
/// (without AVX-512) the float32 one on widened copies. Which one is settled by the first call.
void bf16_gemm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c, int64_t ldc,
               float beta) {
  static std::atomic<bool> unimplemented{false};
  if (!unimplemented.load(std::memory_order_relaxed)) {
    const Operand x = operand(a), y = operand(b);
    const int status = one_dnn().gemm_bf16(
        x.trans, y.trans, a.size(0), b.size(1), a.size(1), 1.0f,
        reinterpret_cast<const uint16_t*>(x.data.data_ptr<at::BFloat16>()), x.ld,
        reinterpret_cast<const uint16_t*>(y.data.data_ptr<at::BFloat16>()), y.ld, beta,
        c.data_ptr<float>(), ldc);
    if (status != kDnnlUnimplemented) {
      check(status, "dnnl_gemm_bf16bf16f32");
      return;
    }
    unimplemented.store(true, std::memory_order_relaxed);
  }
  sgemm(a.to(torch::kFloat), b.to(torch::kFloat), c, ldc, beta);
}

}  // namespace

void gemm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c, float beta) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && c.dim() == 2 && a.size(1) == b.size(0) &&
                  c.size(0) == a.size(0) && c.size(1) == b.size(1),
              "gemm: shapes a ", a.sizes(), ", b ", b.sizes(), ", c ", c.sizes());
  TORCH_CHECK(a.is_cpu() && b.is_cpu() && c.is_cpu(), "gemm: CPU tensors only");
  const torch::ScalarType type = a.scalar_type();
  TORCH_CHECK(b.scalar_type() == type && (c.scalar_type() == type ||
                                          (is_16_bit(type) && c.scalar_type() == torch::kFloat)),
              "gemm: dtypes a ", a.scalar_type(), ", b ", b.scalar_type(), ", c ", c.scalar_type());
  const int64_t m = c.size(0), n = c.size(1), k = a.size(1);
  if (m == 0 || n == 0) return;
  if (type == torch::kDouble) {
    torch::Tensor out = c;  // the same storage: written in place
    if (beta == 0.0f) {
      at::mm_out(out, a, b);
    } else {
      out.addmm_(a, b, beta, 1.0);
    }
    return;
  }
  if (c.scalar_type() != torch::kFloat) {  // 16-bit c: one rounding of the float32 result
    TORCH_CHECK(beta == 0.0f, "gemm: a ", c.scalar_type(), " result takes beta 0, not ", beta);
    const torch::Tensor result = torch::empty({m, n}, c.options().dtype(torch::kFloat));
    gemm(a, b, result, 0.0f);
    torch::Tensor(c).copy_(result);
    return;
  }
  const int64_t ldc = row_major_ld(m, n, c.stride(0), c.stride(1));
  TORCH_CHECK(ldc > 0, "gemm: c must be row-major, strides ", c.strides());
  if (k == 0) {  // an empty sum; oneDNN would want leading dimensions of at least 1 all the same
    torch::Tensor(c).mul_(beta);
    return;
  }
  if (type == torch::kFloat) {
    sgemm(a, b, c, ldc, beta);
  } else if (type == torch::kBFloat16) {
    bf16_gemm(a, b, c, ldc, beta);
  } else {
    TORCH_CHECK(type == torch::kHalf, "gemm: dtype ", type,
                " is not float, bfloat16, half or double");
    sgemm(a.to(torch::kFloat), b.to(torch::kFloat), c, ldc, beta);
  }
}

std::string gemm_library_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(one_dnn().sgemm), &info) == 0 || info.dli_fname == nullptr) {
    return "(unknown)";
  }
  return info.dli_fname;
}

std::string gemm_library_version() {
  const densenet_dnnl_version* v = one_dnn().version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

std::string gemm_library_runtime() {
  const unsigned runtime = one_dnn().version()->cpu_runtime;
  return runtime == kDnnlRuntimeOmp ? "OpenMP" : "runtime " + std::to_string(runtime);
}

}  // namespace densenet::kernels
