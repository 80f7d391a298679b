#pragma once

namespace densenet::detail {

/// While alive, the BLAS library runs each call on the calling thread alone, so that many
/// small GEMMs can run side by side under at::parallel_for (OpenMP threads). Needed for
/// OpenBLAS's pthread build (Debian's), whose own thread pool would otherwise compete with
/// OpenMP's for the same cores: both spin while waiting, and a loop of small GEMMs between
/// OpenMP regions ran 4-5x slower than single-threaded BLAS (densenet-bc-100 blocks 2,2,2,
/// batch 8, 2 cores). Found at run time (dlsym), so any BLAS links; with one that has no
/// OpenBLAS thread control (MKL under ATen's OpenMP regions is single-threaded already) it does
/// nothing. Not thread-safe itself: construct it outside parallel regions.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_threads_ = 0;  // 0: nothing to restore
};

}  // namespace densenet::detail
