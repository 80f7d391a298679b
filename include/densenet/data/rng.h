#pragma once

#include <cstdint>
#include <vector>

namespace densenet::data {

/// A small counter-seeded generator for augmentation and shuffling. Each sample gets its own
/// stream made from (seed, epoch, sample index), so what a sample looks like does not depend
/// on which worker thread draws it or in which order: this is what makes batches independent
/// of the worker count and a resumed epoch identical to an uninterrupted one.
///
/// Hand-written rather than std::mt19937 + std::uniform_*_distribution because the standard
/// distributions are implementation-defined (libstdc++ and libc++ draw differently); splitmix64
/// (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) is
/// fully specified, so the same seed gives the same augmentation on every platform.
class Rng {
 public:
  /// A stream keyed by up to three numbers (e.g. seed, epoch, sample index).
  explicit Rng(uint64_t seed, uint64_t stream_a = 0, uint64_t stream_b = 0);

  /// The stream of one sample in one epoch.
  static Rng for_sample(uint64_t seed, int64_t epoch, int64_t index);

  uint64_t next_u64();
  /// Uniform in [0, 1), 53 random bits.
  double uniform();
  /// Uniform in [low, high).
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  /// Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift, bias below 2^-64 * n).
  int64_t below(int64_t n);
  /// Uniform integer in [low, high] inclusive.
  int64_t integer(int64_t low, int64_t high) { return low + below(high - low + 1); }
  /// True with probability p.
  bool bernoulli(double p) { return uniform() < p; }
  /// Standard normal (Box-Muller).
  double normal();

 private:
  uint64_t state_;
};

/// A permutation of 0..n-1 (Fisher-Yates) drawn from Rng(seed, epoch, stream): the same for
/// the same arguments everywhere.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, int64_t epoch, uint64_t stream = 0);

}  // namespace densenet::data
