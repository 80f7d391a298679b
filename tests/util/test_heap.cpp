// keep_freed_memory: a large tensor freed and allocated again reuses the heap instead of a new
// mapping (glibc only; the reason is in densenet/util/heap.h).

#include "densenet/util/heap.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace densenet {
namespace {

#if defined(__GLIBC__)
TEST(Heap, LargeTensorsComeFromTheHeapAfterKeepFreedMemory) {
  ASSERT_TRUE(keep_freed_memory());
  const size_t mapped_before = mallinfo2().hblkhd;
  for (int i = 0; i < 3; ++i) {
    // 80 MiB, as block 1 of DenseNet-BC-40 holds for an evaluation batch of 256.
    torch::Tensor big = torch::empty({20 << 20}, torch::kFloat);
    big.fill_(1.0f);
    EXPECT_LT(mallinfo2().hblkhd, mapped_before + (64u << 20))
        << "allocation " << i << " got its own mapping";
  }
}
#else
TEST(Heap, DoesNothingWithoutGlibc) {
  EXPECT_FALSE(keep_freed_memory());
}
#endif

}  // namespace
}  // namespace densenet
