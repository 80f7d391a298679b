#pragma once

// 16-bit data (the stages' buffers under amp) read into float32 and rounded back, a block at a
// time, for the CPU kernels' plane loops (bn_relu.cpp, norm_relu_conv1x1.cpp). Converting one
// element at a time inside those loops kept GCC from vectorising them: c10::BFloat16's
// constructor branches on NaN, so a bfloat16 BN-ReLU backward ran 4.8x slower than the float32
// one on the same planes (densenet-bc-100, batch 64, 228 vs 47 ms a step, `bench --profile`,
// 2026-12-05). Here the conversions are separate loops that vectorise on their own, and the
// arithmetic runs on float32 blocks, through the float32 kernels' own code. Internal to the
// kernels.

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace densenet::kernels::detail {

/// Elements per block: three float32 blocks (x, grad_y, the result) stay in L1 (24 KiB).
constexpr int64_t kSixteenBitBlock = 2048;

/// Calls f(start, len) for the blocks of at most kSixteenBitBlock values that cover [0, n).
template <typename F>
inline void for_each_block(int64_t n, F&& f) {
  for (int64_t start = 0; start < n; start += kSixteenBitBlock) {
    f(start, n - start < kSixteenBitBlock ? n - start : kSixteenBitBlock);
  }
}

template <typename S>
constexpr bool is_sixteen_bit_v = std::is_same_v<S, c10::BFloat16> || std::is_same_v<S, c10::Half>;

/// out[i] = in[i] as float32 (exact for both 16-bit types).
inline void widen(const c10::BFloat16* in, float* out, int64_t n) {
  // The bfloat16 bits are float32's upper half (c10::BFloat16's own conversion).
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(in[i].x) << 16;
    std::memcpy(out + i, &bits, sizeof(bits));
  }
}

inline void widen(const c10::Half* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

/// out[i] = in[i] rounded to nearest even, NaN to a quiet NaN: c10::BFloat16(float)'s result,
/// computed without its branch.
inline void narrow(const float* in, c10::BFloat16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, sizeof(bits));
    const uint32_t rounded = (bits + (((bits >> 16) & 1U) + 0x7FFFU)) >> 16;
    const bool nan = (bits & 0x7FFFFFFFU) > 0x7F800000U;
    out[i].x = static_cast<uint16_t>(nan ? 0x7FC0U : rounded);
  }
}

inline void narrow(const float* in, c10::Half* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<c10::Half>(in[i]);
}

}  // namespace densenet::kernels::detail
