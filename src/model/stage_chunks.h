#pragma once

#include <cstdint>

// How many chunks of the batch the CPU's stage convolutions run over. dense_stage.cpp runs them
// so, and memory_plan.cpp counts the transient buffers that follow from it: one definition, so
// that the plan cannot drift from the code it describes.
namespace densenet::detail {

// Convolutions of backward (and the transition's in forward) run over chunks of the batch on
// the CPU: oneDNN works on a reordered (blocked) copy of its input and output gradient, and
// chunking keeps those copies, and the input gradient before it is written back, at 1/kChunks
// of a buffer, where the stage's peak is. Forward convolutions of the layers run whole: their
// copies fall outside the peak, and whole-batch calls are faster. cuDNN reads the buffers as
// they are, and on a GPU each call costs a launch or more, so there the batch runs whole.
constexpr int64_t kCpuChunks = 8;
// The 3x3 convolution of a BC layer reads the bottleneck (B = 4k channels, a fraction of the
// block buffer), so its copies weigh less: in efficient mode it runs in 2 chunks (backward
// bc-100 b64 -4%, densenet121 96 px b32 -16%, peak unchanged in both). Minimal keeps 8 (2 cost
// densenet121 +6% peak); plain layers keep 8 (densenet-40 b64: 2 chunks +22% peak, and slower).
constexpr int64_t kCpuBottleneckChunks = 2;

}  // namespace densenet::detail
