#include "util/blas_threads.h"

#include <dlfcn.h>

namespace densenet::detail {

namespace {

struct OpenBlasThreadControl {
  using Set = void (*)(int);
  using Get = int (*)();
  Set set = nullptr;
  Get get = nullptr;
};

const OpenBlasThreadControl& openblas() {
  static const OpenBlasThreadControl control = [] {
    OpenBlasThreadControl c;
    c.set = reinterpret_cast<OpenBlasThreadControl::Set>(
        dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    c.get = reinterpret_cast<OpenBlasThreadControl::Get>(
        dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (c.set == nullptr || c.get == nullptr) c = OpenBlasThreadControl{};
    return c;
  }();
  return control;
}

}  // namespace

SingleThreadedBlas::SingleThreadedBlas() {
  const OpenBlasThreadControl& control = openblas();
  if (control.set == nullptr) return;
  const int threads = control.get();
  if (threads <= 1) return;
  previous_threads_ = threads;
  control.set(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (previous_threads_ > 0) openblas().set(previous_threads_);
}

}  // namespace densenet::detail
