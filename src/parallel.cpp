#include "parallel.h"

#include "densenet/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>

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

}  // namespace detail
}  // namespace densenet
