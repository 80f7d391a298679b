// The stages' GEMM module (kernels/gemm.h) against at::mm in double of the same values, case by
// case (ggml test-backend-ops style: each case named by its shape, layout and dtypes), and the
// library behind it: Debian's oneDNN, sharing our OpenMP runtime, one thread per call inside
// our parallel loops.
#include "kernels/gemm.h"
#include "util/parallel.h"

#include "densenet/util/threads.h"

#include "support/tensor_compare.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <link.h>
#include <omp.h>

#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace densenet::kernels {
namespace {

// Tolerances, as testing::tensors_close measures them (the largest error relative to the
// result's largest magnitude), against at::mm in double of the very values the GEMM read.
// float32 sums of up to ~1000 products of unit-sized numbers carry a few roundings of 2^-24 per
// step and cancel on average: 1e-5 of the scale. 16-bit inputs do no worse: a product of two
// bfloat16 (8-bit significands) or float16 (11-bit) numbers is exact in float32, so only the
// float32 sums round; a sum kept in bfloat16 would be off by ~1e-2, which this tolerance catches.
constexpr double kFloat32Sums = 1e-5;
// A 16-bit result adds one rounding to it: half a unit in the last place, 2^-9 relative for
// bfloat16 (8 significant bits), 2^-12 for float16 (11 bits); twice that, for the sums' share.
constexpr double kBFloat16Result = 0x1p-8;
constexpr double kFloat16Result = 0x1p-11;
// double: rounding only.
constexpr double kFloat64Sums = 1e-12;

enum class Layout { kRowMajor, kTransposed, kRowsOfWider };

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::kRowMajor:
      return "N";
    case Layout::kTransposed:
      return "T";
    case Layout::kRowsOfWider:
      return "W";  // row-major with a row stride larger than its width
  }
  return "?";
}

struct GemmCase {
  int64_t m, n, k;
  Layout a, b, c;  // c: kRowMajor or kRowsOfWider
  torch::Dtype inputs, result;
  float beta;

  std::string name() const {
    auto dtype = [](torch::Dtype t) {
      return t == torch::kFloat      ? "f32"
             : t == torch::kBFloat16 ? "bf16"
             : t == torch::kHalf     ? "f16"
                                     : "f64";
    };
    std::ostringstream out;
    out << "M" << m << "_N" << n << "_K" << k << "_a" << layout_name(a) << "_b" << layout_name(b)
        << "_c" << layout_name(c) << "_" << dtype(inputs) << "_to_" << dtype(result)
        << (beta != 0.0f ? "_accumulate" : "_write");
    return out.str();
  }
  double tolerance() const {
    if (result == torch::kDouble) return kFloat64Sums;
    if (result == torch::kBFloat16) return kBFloat16Result;
    if (result == torch::kHalf) return kFloat16Result;
    return kFloat32Sums;
  }
};

void PrintTo(const GemmCase& c, std::ostream* os) {
  *os << c.name();
}

/// A (rows, cols) matrix of `dtype` in `layout`: values of a standard normal, rounded to dtype.
torch::Tensor matrix(int64_t rows, int64_t cols, torch::Dtype dtype, Layout layout) {
  switch (layout) {
    case Layout::kRowMajor:
      return torch::randn({rows, cols}).to(dtype);
    case Layout::kTransposed:
      return torch::randn({cols, rows}).to(dtype).t();
    case Layout::kRowsOfWider:
      return torch::randn({rows, cols + 7}).to(dtype).narrow(1, 3, cols);
  }
  return {};
}

std::vector<GemmCase> cases() {
  // The stages' shapes (B = 48 rows of a bottleneck, C = 150 channels, a 32x32 plane), odd ones,
  // and single rows and columns.
  const int64_t shapes[][3] = {{48, 1024, 150}, {150, 48, 1024}, {150, 1024, 48}, {5, 7, 3},
                               {1, 9, 4},       {6, 1, 5},       {3, 4, 1}};
  const std::pair<torch::Dtype, torch::Dtype> dtypes[] = {
      {torch::kFloat, torch::kFloat},       {torch::kBFloat16, torch::kFloat},
      {torch::kBFloat16, torch::kBFloat16}, {torch::kHalf, torch::kFloat},
      {torch::kHalf, torch::kHalf},         {torch::kDouble, torch::kDouble}};
  std::vector<GemmCase> all;
  for (const auto& s : shapes) {
    for (const auto& [inputs, result] : dtypes) {
      for (Layout a : {Layout::kRowMajor, Layout::kTransposed}) {
        for (Layout b : {Layout::kRowMajor, Layout::kTransposed, Layout::kRowsOfWider}) {
          const bool takes_beta = result == torch::kFloat || result == torch::kDouble;
          for (float beta : {0.0f, 1.0f}) {
            if (beta != 0.0f && !takes_beta) continue;  // 16-bit results take beta 0
            all.push_back({s[0], s[1], s[2], a, b, Layout::kRowsOfWider, inputs, result, beta});
          }
        }
      }
    }
  }
  all.push_back({48, 1024, 150, Layout::kRowMajor, Layout::kRowMajor, Layout::kRowMajor,
                 torch::kFloat, torch::kFloat, 0.0f});
  return all;
}

class GemmCases : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmCases, MatchesMatrixProductInDouble) {
  const GemmCase g = GetParam();
  torch::manual_seed(static_cast<uint64_t>(g.m * 10000 + g.n * 100 + g.k));
  const torch::Tensor a = matrix(g.m, g.k, g.inputs, g.a);
  const torch::Tensor b = matrix(g.k, g.n, g.inputs, g.b);
  const torch::Tensor wide = torch::randn({g.m, g.n + 5}).to(g.result);
  const torch::Tensor initial =
      g.c == Layout::kRowsOfWider ? wide.narrow(1, 2, g.n) : wide.narrow(1, 0, g.n).contiguous();
  const torch::Tensor expected =
      at::mm(a.to(torch::kDouble), b.to(torch::kDouble)) + g.beta * initial.to(torch::kDouble);
  torch::Tensor buffer = wide.clone();
  torch::Tensor c = g.c == Layout::kRowsOfWider ? buffer.narrow(1, 2, g.n) : initial.clone();
  gemm(a, b, c, g.beta);
  EXPECT_TRUE(testing::tensors_close("c", c, expected, g.tolerance()));
  if (g.c == Layout::kRowsOfWider) {
    EXPECT_TRUE(testing::tensors_identical("columns outside c", buffer.narrow(1, 0, 2),
                                           wide.narrow(1, 0, 2)));
    EXPECT_TRUE(testing::tensors_identical("columns outside c", buffer.narrow(1, g.n + 2, 3),
                                           wide.narrow(1, g.n + 2, 3)));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, GemmCases, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

TEST(Gemm, EmptySumScalesTheResult) {
  const torch::Tensor a = torch::empty({3, 0}), b = torch::empty({0, 4});
  torch::Tensor c = torch::ones({3, 4});
  gemm(a, b, c, 0.5f);
  EXPECT_TRUE(testing::tensors_identical("c", c, torch::full({3, 4}, 0.5f)));
  gemm(a, b, c);
  EXPECT_TRUE(testing::tensors_identical("c", c, torch::zeros({3, 4})));
}

TEST(Gemm, RefusesWhatItCannotDo) {
  const torch::Tensor a = torch::randn({3, 4}), b = torch::randn({4, 5});
  EXPECT_THROW(gemm(a, b, torch::empty({3, 6})), c10::Error);                     // shape
  EXPECT_THROW(gemm(a, b.to(torch::kDouble), torch::empty({3, 5})), c10::Error);  // dtypes
  EXPECT_THROW(gemm(a, b, torch::empty({5, 3}).t()), c10::Error);                 // c layout
  EXPECT_THROW(gemm(a.to(torch::kInt), b.to(torch::kInt), torch::empty({3, 5}, torch::kInt)),
               c10::Error);
  const torch::Tensor a16 = a.to(torch::kBFloat16), b16 = b.to(torch::kBFloat16);
  EXPECT_THROW(gemm(a16, b16, torch::empty({3, 5}, torch::kBFloat16), 1.0f), c10::Error);
}

// The oneDNN our GEMMs call is Debian's libdnnl.so.2 (2.6, on OpenMP), in this build whichever
// LibTorch it links: pip's LibTorch links a oneDNN 3.x of its own into libtorch_cpu.so, and
// were it to export its dnnl_* functions, the dynamic linker could bind our calls to them, a
// library of another version than the one declared in gemm.cpp.
TEST(Gemm, CallsDebiansOneDnn) {
  const std::string path = gemm_library_path();
  EXPECT_NE(path.find("libdnnl.so.2"), std::string::npos) << path;
  EXPECT_EQ(path.find("torch"), std::string::npos) << path;
  EXPECT_EQ(gemm_library_version().rfind("2.6.", 0), 0u) << gemm_library_version();
  EXPECT_EQ(gemm_library_runtime(), "OpenMP");
  // Every dnnl_ function the process can see by name is that library's. (gemm.cpp opens it
  // RTLD_LOCAL: with pip's LibTorch the process sees none; Debian's links it, and all of them.)
  for (const char* name : {"dnnl_sgemm", "dnnl_gemm_bf16bf16f32", "dnnl_version"}) {
    void* symbol = dlsym(RTLD_DEFAULT, name);
    if (symbol == nullptr) continue;
    Dl_info info{};
    ASSERT_NE(dladdr(symbol, &info), 0) << name;
    EXPECT_EQ(std::string(info.dli_fname), path) << name;
  }
}

#if defined(__x86_64__)
struct Binding {
  std::string symbol, file;  // a symbol a library refers to, and the file it was bound into
};

/// The relocations in table `relocations` (`bytes` long) of the library loaded at `base`, against
/// symbols the library itself defines and whose names contain `part`, with what each resolved to
/// (read back from the slot the dynamic linker filled).
void collect_bindings(ElfW(Addr) base, const ElfW(Sym) * symbols, const char* names,
                      const ElfW(Rela) * relocations, size_t bytes, const std::string& part,
                      std::vector<Binding>& out) {
  for (size_t i = 0; i < bytes / sizeof(ElfW(Rela)); ++i) {
    const ElfW(Rela)& r = relocations[i];
    const auto type = ELF64_R_TYPE(r.r_info);
    if (type != R_X86_64_GLOB_DAT && type != R_X86_64_JUMP_SLOT && type != R_X86_64_64) continue;
    const ElfW(Sym)& symbol = symbols[ELF64_R_SYM(r.r_info)];
    const std::string name = names + symbol.st_name;
    if (symbol.st_shndx == SHN_UNDEF || name.find(part) == std::string::npos) continue;
    ElfW(Addr) target = *reinterpret_cast<const ElfW(Addr)*>(base + r.r_offset);
    if (type == R_X86_64_64) target -= r.r_addend;
    Dl_info info{};
    const bool found = dladdr(reinterpret_cast<void*>(target), &info) != 0;
    out.push_back({name, found && info.dli_fname != nullptr ? info.dli_fname : "(none)"});
  }
}

/// collect_bindings over both relocation tables of one loaded library.
void collect_library_bindings(const dl_phdr_info& info, const std::string& part,
                              std::vector<Binding>& out) {
  const ElfW(Addr) base = info.dlpi_addr;
  // glibc relocates the pointers of a loaded library's dynamic section in place; be safe anyway.
  auto at = [base](ElfW(Addr) a) { return a < base ? a + base : a; };
  for (int p = 0; p < info.dlpi_phnum; ++p) {
    if (info.dlpi_phdr[p].p_type != PT_DYNAMIC) continue;
    ElfW(Addr) symbols = 0, names = 0, rela = 0, plt = 0;
    size_t rela_bytes = 0, plt_bytes = 0;
    for (auto* d = reinterpret_cast<const ElfW(Dyn)*>(base + info.dlpi_phdr[p].p_vaddr);
         d->d_tag != DT_NULL; ++d) {
      if (d->d_tag == DT_SYMTAB) symbols = at(d->d_un.d_ptr);
      if (d->d_tag == DT_STRTAB) names = at(d->d_un.d_ptr);
      if (d->d_tag == DT_RELA) rela = at(d->d_un.d_ptr);
      if (d->d_tag == DT_JMPREL) plt = at(d->d_un.d_ptr);
      if (d->d_tag == DT_RELASZ) rela_bytes = d->d_un.d_val;
      if (d->d_tag == DT_PLTRELSZ) plt_bytes = d->d_un.d_val;
    }
    if (symbols == 0 || names == 0) continue;
    for (const auto& [table, bytes] : {std::pair{rela, rela_bytes}, std::pair{plt, plt_bytes}}) {
      if (table == 0) continue;
      collect_bindings(base, reinterpret_cast<const ElfW(Sym)*>(symbols),
                       reinterpret_cast<const char*>(names),
                       reinterpret_cast<const ElfW(Rela)*>(table), bytes, part, out);
    }
  }
}

/// The bindings of collect_bindings for the loaded library whose file name contains `library`.
std::vector<Binding> own_symbol_bindings(const std::string& library, const std::string& part) {
  struct Query {
    const std::string *library, *part;
    std::vector<Binding> found;
  } query{&library, &part, {}};
  auto visit = [](dl_phdr_info* info, size_t, void* data) {
    auto* q = static_cast<Query*>(data);
    if (info->dlpi_name == nullptr ||
        std::string(info->dlpi_name).find(*q->library) == std::string::npos) {
      return 0;
    }
    collect_library_bindings(*info, *q->part, q->found);
    return 1;
  };
  dl_iterate_phdr(visit, &query);
  return query.found;
}
#endif

// libdnnl.so.2's references to oneDNN's own internals (dnnl::impl) bind to its own definitions.
// pip's LibTorch exports, from libtorch_cpu.so (loaded first), some vague-linkage symbols of its
// oneDNN 3.x under the same names: the std::call_once thunks of gemm_info_t<...>::jit_init()'s
// lambdas. Bound to those, libdnnl.so.2's one-time GEMM set-up ran 3.x's code and left its own
// kernel tables empty, and every dnnl_sgemm returned 3 (unimplemented). gemm.cpp opens the
// library with RTLD_DEEPBIND for it; this reads back each binding the dynamic linker made.
TEST(Gemm, OneDnnBindsToItself) {
#if defined(__x86_64__)
  const std::string path = gemm_library_path();  // loads the library, if not yet loaded
  const std::vector<Binding> bindings = own_symbol_bindings("libdnnl.so.2", "4dnnl4impl");
  EXPECT_FALSE(bindings.empty()) << "no relocations against dnnl::impl symbols found";
  for (const Binding& b : bindings) EXPECT_EQ(b.file, path) << b.symbol;
  // The symptom itself: a float32 GEMM that oneDNN refused.
  const torch::Tensor a = torch::randn({256, 256}), b = torch::randn({256, 256});
  const torch::Tensor c = torch::empty({256, 256});
  gemm(a, b, c);
  EXPECT_TRUE(testing::tensors_close("c", c, at::mm(a, b), kFloat32Sums));
#else
  GTEST_SKIP() << "reads x86-64 relocations";
#endif
}

int count_loaded(const std::string& name) {
  int count = 0;
  auto visit = [](dl_phdr_info* info, size_t, void* data) {
    auto* seen = static_cast<std::pair<const std::string*, int*>*>(data);
    if (info->dlpi_name != nullptr &&
        std::string(info->dlpi_name).find(*seen->first) != std::string::npos) {
      ++*seen->second;
    }
    return 0;
  };
  std::pair<const std::string*, int*> data{&name, &count};
  dl_iterate_phdr(visit, &data);
  return count;
}

// oneDNN runs a GEMM on one thread inside an active OpenMP parallel region (gemm.h), which it
// can only see if its OpenMP runtime is the one our loops run on: one libgomp in the process,
// and oneDNN's omp_in_parallel is ours.
TEST(Gemm, SharesOpenMpRuntimeWithOneDnn) {
  gemm_library_path();  // gemm.cpp loads the library on first use
  EXPECT_EQ(count_loaded("libgomp"), 1);
  void* dnnl = dlopen("libdnnl.so.2", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(dnnl, nullptr);
  void* theirs = dlsym(dnnl, "omp_in_parallel");
  dlclose(dnnl);
  Dl_info their_info{}, our_info{};
  ASSERT_NE(dladdr(theirs, &their_info), 0);
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&omp_in_parallel), &our_info), 0);
  EXPECT_EQ(std::string(their_info.dli_fname), std::string(our_info.dli_fname));
}

int64_t threads_of_process() {
  int64_t count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (const dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
    closedir(dir);
  }
  return count;
}

// Inside our parallel loops each GEMM runs on the thread that calls it. With nested parallelism
// allowed, a GEMM that split itself over threads there would start a team of its own for as
// long as it runs (libgomp ends a nested team's threads with its region): a thread that watches
// the process's thread count meanwhile would see it grow. It must not. (The watch can miss a
// team, it cannot see one that is not there: a pass is never a matter of timing.)
TEST(Gemm, OneThreadPerCallInsideParallelLoops) {
  const int previous_threads = at::get_num_threads();
  const int previous_levels = omp_get_max_active_levels();
  set_num_threads(2);
  omp_set_max_active_levels(2);
  const torch::Tensor a = torch::randn({512, 512}), b = torch::randn({512, 512});
  const torch::Tensor c = torch::empty({2, 512, 512});
  auto run_loop = [&] {
    densenet::detail::parallel_for_with_state(0, 2, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) gemm(a, b, c[i]);
    });
  };
  run_loop();  // the loop's own team exists from here on
  const int64_t before = threads_of_process();
  std::atomic<bool> done{false};
  std::atomic<int64_t> most{0};
  std::thread watch([&] {
    while (!done.load()) most = std::max<int64_t>(most.load(), threads_of_process());
  });
  for (int repeat = 0; repeat < 5; ++repeat) run_loop();
  done = true;
  watch.join();
  EXPECT_EQ(most.load(), before + 1) << "threads beside the loop's and the watch's own";
  EXPECT_TRUE(testing::tensors_close("c", c[1], at::mm(a, b), kFloat32Sums));
  omp_set_max_active_levels(previous_levels);
  set_num_threads(previous_threads);
}

}  // namespace
}  // namespace densenet::kernels
