#pragma once

namespace densenet {

/// Sets the number of threads for intra-op parallelism: LibTorch's (at::set_num_threads) and
/// that of this library's own parallel loops. The two differ when LibTorch ships its own
/// OpenMP runtime (pip's wheels bundle a renamed libgomp) and this library was compiled against
/// the system's; with Debian's LibTorch both are the same runtime. Call it instead of
/// at::set_num_threads.
void set_num_threads(int threads);

}  // namespace densenet
