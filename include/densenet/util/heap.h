#pragma once

namespace densenet {

/// Keeps memory freed by large tensors in the process heap for reuse instead of returning it to
/// the kernel. glibc's malloc serves blocks above its mmap threshold (at most 32 MiB by its
/// dynamic rule) with fresh mappings and unmaps them on free, so every evaluation batch of 256
/// Fashion-MNIST images (block 1 of DenseNet-BC-40 alone holds 77 MiB) faulted in and zeroed its
/// pages again. Measured with `densenet eval` on 5,120 images, batch 256, 2 threads: 11.1 s
/// before, 6.4 s after (docs/BENCHMARKS.md, "Training"). The process's peak RSS is unchanged,
/// since the same sizes recur every step.
///
/// Process-wide and not undone: call it once at the start of a long run (train, eval). Does
/// nothing where the C library is not glibc. Returns whether the setting took.
bool keep_freed_memory();

}  // namespace densenet
