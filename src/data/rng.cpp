#include "densenet/data/rng.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <numeric>

namespace densenet::data {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// splitmix64's output function (Steele et al. 2014).
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream_a, uint64_t stream_b)
    : state_(mix(mix(mix(seed + kGolden) ^ (stream_a + kGolden)) ^ (stream_b + 2 * kGolden))) {}

Rng Rng::for_sample(uint64_t seed, int64_t epoch, int64_t index) {
  return Rng(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index));
}

uint64_t Rng::next_u64() {
  state_ += kGolden;
  return mix(state_);
}

double Rng::uniform() {
  return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

int64_t Rng::below(int64_t n) {
  TORCH_CHECK(n >= 1, "Rng::below needs n >= 1, got ", n);
  const unsigned __int128 product =
      static_cast<unsigned __int128>(next_u64()) * static_cast<uint64_t>(n);
  return static_cast<int64_t>(product >> 64);
}

double Rng::normal() {
  // Box-Muller; 1 - uniform() is in (0, 1], so the logarithm is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed, int64_t epoch, uint64_t stream) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  // Its own stream, distinct from every sample's (sample indices are < 2^63).
  Rng rng(seed, static_cast<uint64_t>(epoch), ~uint64_t{0} - stream);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  return order;
}

}  // namespace densenet::data
