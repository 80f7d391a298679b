#include "util/parallel.h"

#include "densenet/util/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace densenet {

void set_num_threads(int threads) {
  at::set_num_threads(threads);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
}

namespace detail {

int64_t max_parallel_threads() {
  int64_t threads = at::get_num_threads();
#ifdef _OPENMP
  threads = std::max<int64_t>(threads, omp_get_max_threads());
#endif
  return std::max<int64_t>(1, threads);
}

int64_t threads_in_parallel_loop(int64_t items) {
  std::atomic<int64_t> highest{0};
  at::parallel_for(0, items, /*grain_size=*/1, [&](int64_t, int64_t) {
    const int64_t thread = at::get_thread_num();
    int64_t seen = highest.load();
    while (thread > seen && !highest.compare_exchange_weak(seen, thread)) {
    }
  });
  return highest.load() + 1;
}

}  // namespace detail
}  // namespace densenet
