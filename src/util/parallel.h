#pragma once

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <cstdint>

namespace densenet::detail {

/// An upper bound of at::get_thread_num() inside this library's at::parallel_for loops, for
/// sizing per-thread partial results. at::parallel_for is a header template: its
/// `#pragma omp parallel` runs on the OpenMP runtime this library was compiled with, which can
/// be a different one from LibTorch's (whose thread count at::get_num_threads() reports).
int64_t max_parallel_threads();

/// How many threads one of this library's at::parallel_for loops runs on now (a loop of
/// `items` items, grain 1). For the test that the library was compiled with OpenMP: without
/// it, the loops compile to serial code and this is 1 whatever at::set_num_threads says.
int64_t threads_in_parallel_loop(int64_t items);

/// at::parallel_for whose body runs with the calling thread's thread-local state (grad mode,
/// profiler, dispatch keys) on every worker: OpenMP's worker threads do not inherit it, and a
/// body that calls ATen operators (the per-sample GEMMs) must see the caller's NoGradGuard.
/// Bodies that only touch raw memory can use at::parallel_for directly.
template <typename Body>
void parallel_for_with_state(int64_t begin, int64_t end, int64_t grain_size, const Body& body) {
  const at::ThreadLocalState state;
  at::parallel_for(begin, end, grain_size, [&](int64_t first, int64_t last) {
    at::ThreadLocalStateGuard guard(state);
    body(first, last);
  });
}

}  // namespace densenet::detail
