#include "densenet/util/heap.h"

#include <cstdlib>  // defines __GLIBC__ with glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace densenet {

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // 1 GiB: above any single activation of the training and evaluation batches we plan for; a
  // larger block still gets its own mapping. The trim threshold keeps the heap's top as well.
  constexpr int kThreshold = 1 << 30;
  return mallopt(M_MMAP_THRESHOLD, kThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kThreshold) == 1;
#else
  return false;
#endif
}

}  // namespace densenet
