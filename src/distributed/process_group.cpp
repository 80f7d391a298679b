#include "densenet/distributed/process_group.h"

#include "densenet/distributed/network.h"

#ifdef DENSENET_WITH_NCCL
#include "distributed/nccl_group.h"
#endif

#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace densenet::distributed {
namespace {

// c10d's base class of its backends (Gloo, NCCL): ProcessGroup in LibTorch 1.13, Backend from 2.0.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

std::string first_line(const std::string& text) {
  const size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

std::string error_text(const std::exception& error) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    return first_line(c10_error->what_without_backtrace());
  }
  return first_line(error.what());
}

std::string seconds_text(std::chrono::milliseconds duration) {
  std::ostringstream out;
  out << static_cast<double>(duration.count()) / 1000.0 << " s";
  return out.str();
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// Gloo binds its pairs to one address: an interface's when dist-ifname or GLOO_SOCKET_IFNAME
// names one (several: one device each, as PyTorch does), the loopback one when the store is on
// this machine's loopback (tests, one node), else this host's resolved name
// (createDefaultDevice falls back to loopback by itself).
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(
    const Environment& environment, const std::vector<std::string>& interfaces) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  for (const std::string& interface : interfaces) {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  }
  if (!devices.empty()) return devices;
  if (is_loopback(environment.master_addr)) {
    return {c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")};
  }
  return {c10d::ProcessGroupGloo::createDefaultDevice()};
}

// TCPStore waits for each reply as long as its socket's receive timeout allows, and sets that
// timeout only in wait() (to wait()'s timeout, kept for the requests after it): without one, a
// request to a store host that is stopped or cut off by the network waits until TCP gives up
// (15 minutes and more). A wait() for a key that exists returns at once and sets the timeout.
// (LibTorch 1.13's TCPStore.cpp; dist_cli.stopped_rank stops the store's host to check it.)
void bound_replies(c10d::Store& store, const std::string& existing_key,
                   std::chrono::milliseconds timeout) {
  store.wait({existing_key}, timeout);
}

// How long a live store may take to answer before its host is taken for lost: its thread can
// wait seconds to be scheduled on loaded cores.
constexpr std::chrono::milliseconds kStoreReplyTimeout{5000};

std::string heartbeat_key(int64_t rank) {
  return "densenet/heartbeat/" + std::to_string(rank);
}

}  // namespace

std::string choose_backend(const std::string& requested, const torch::Device& device,
                           bool with_nccl) {
  TORCH_CHECK_VALUE(requested == "auto" || requested == "gloo" || requested == "nccl",
                    "config key 'dist-backend': unknown value '", requested,
                    "': use one of auto, gloo, nccl");
  const std::string backend = requested == "auto"
                                  ? (device.is_cuda() ? std::string("nccl") : std::string("gloo"))
                                  : requested;
  if (backend == "nccl") {
    TORCH_CHECK_VALUE(with_nccl,
                      "dist-backend nccl (CUDA) is not supported by this build: its LibTorch (",
                      TORCH_VERSION,
                      ") has no ProcessGroupNCCL; train data-parallel on CPU with device cpu and "
                      "dist-backend gloo, or build against pip's CUDA LibTorch (scripts/build.sh "
                      "--cuda)");
    TORCH_CHECK_VALUE(device.is_cuda(), "dist-backend nccl reduces CUDA tensors, and device is ",
                      device,
                      ": use device cuda or --gpus (rank r computes on cuda:LOCAL_RANK), or "
                      "dist-backend gloo on the CPU");
    return backend;
  }
  TORCH_CHECK_VALUE(!device.is_cuda(), "dist-backend gloo here reduces CPU tensors: use device cpu",
                    with_nccl ? ", or dist-backend nccl on CUDA" : "");
  return backend;
}

std::string choose_backend(const std::string& requested, const torch::Device& device) {
  return choose_backend(requested, device, nccl_available());
}

// A rank's heartbeat: a counter in the store, incremented every `interval` by its own thread on
// its own store connection (so that it never interleaves with another thread's requests on one
// socket). Shared with that thread, which may outlive the group: a thread blocked on a store
// that no longer answers is left to end by itself (detached), not waited for.
struct Heartbeat {
  c10::intrusive_ptr<c10d::Store> store;
  std::string key;
  std::chrono::milliseconds interval{1000};
  std::mutex mutex;
  std::condition_variable wake;  // stop requested, or the thread ended
  bool stopping = false;
  bool ended = false;

  void run() {
    try {
      while (true) {
        store->add(key, 1);
        std::unique_lock<std::mutex> lock(mutex);
        if (wake.wait_for(lock, interval, [&] { return stopping; })) break;
      }
    } catch (const std::exception&) {
      // The store is gone or does not answer: the next collective reports it.
    }
    std::lock_guard<std::mutex> lock(mutex);
    ended = true;
    wake.notify_all();
  }
};

namespace {
// A collective of some group failed, and its error was reported or is on its way out.
std::atomic<bool> any_failure{false};
// How long a thread that NCCL's watchdog ends waits for an error already on its way out of the
// process (the caller's line, then exit) before it ends the process itself.
constexpr std::chrono::seconds kExitGrace{30};
}  // namespace

struct ProcessGroup::Impl {
  Environment environment;
  std::chrono::milliseconds timeout;
  std::string backend;
  torch::Device device = torch::kCPU;  // where the collectives' tensors are
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Collectives> group;  // ProcessGroupGloo or ProcessGroupNCCL
  std::shared_ptr<Heartbeat> heartbeat = std::make_shared<Heartbeat>();
  std::thread heartbeat_thread;
  // A caller's collective, or NCCL's watchdog (`fatal`), failed: the run ends, nothing is waited
  // for. The mutex makes one of the two the reporter when both fail at once.
  std::mutex failure_mutex;
  std::atomic<bool> failed{false};
  bool fatal = false;

  // `worker`: the rank's own connection, counted in the store's "init" key (as torch's are);
  // the server waits until all world-size ranks have counted themselves.
  c10::intrusive_ptr<c10d::Store> connect(bool server, bool worker) const {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(environment.master_port);
    options.isServer = server;
    options.numWorkers = static_cast<size_t>(environment.world_size);
    options.waitWorkers = worker;
    options.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> tcp =
        c10::make_intrusive<c10d::TCPStore>(environment.master_addr, options);
    if (environment.agent_store) {
      // torch.distributed's own prefix under the agent, so that a restarted attempt does not
      // read the keys of the one before.
      return c10::make_intrusive<c10d::PrefixStore>(
          "/worker/attempt_" + std::to_string(environment.restart_count), tcp);
    }
    return tcp;
  }

  void start_heartbeat(std::chrono::milliseconds interval) {
    heartbeat->interval = interval;
    heartbeat->key = heartbeat_key(environment.rank);
    heartbeat->store = connect(/*server=*/false, /*worker=*/false);
    heartbeat->store->add(heartbeat->key, 1);
    // A beat that the store does not answer within dist-timeout ends the heartbeat.
    bound_replies(*heartbeat->store, heartbeat->key, timeout);
    heartbeat_thread = std::thread([beat = heartbeat] { beat->run(); });
  }

  void stop_heartbeat() {
    if (!heartbeat_thread.joinable()) return;
    std::unique_lock<std::mutex> lock(heartbeat->mutex);
    heartbeat->stopping = true;
    heartbeat->wake.notify_all();
    // A beat in flight to a store that is gone would hold the rank up to dist-timeout: after a
    // failure it is not waited for at all, else for 2 s (a beat to a live store on loaded cores).
    const bool ended = heartbeat->wake.wait_for(
        lock, failed ? std::chrono::milliseconds(0) : std::chrono::milliseconds(2000),
        [&] { return heartbeat->ended; });
    lock.unlock();
    if (ended) {
      heartbeat_thread.join();
    } else {
      heartbeat_thread.detach();
    }
  }

  // The ranks whose heartbeat has stopped, as text ("rank 1", "ranks 1, 3"), or "" when every
  // heartbeat is alive; "rank 0 (the host of the rendezvous store)" when the store is gone or
  // does not answer within kStoreReplyTimeout (stopped, or cut off by the network).
  // (Also called on NCCL's watchdog thread while ProcessGroupNCCL's threads use `store`: c10d's
  // TCPStore serialises its requests from 2.0 on; LibTorch 1.13 has no NCCL here.)
  std::string lost_ranks() {
    try {
      bound_replies(*store, heartbeat_key(environment.rank), kStoreReplyTimeout);
      const auto read = [&] {
        std::vector<int64_t> counts;
        for (int64_t r = 0; r < environment.world_size; ++r) {
          counts.push_back(store->add(heartbeat_key(r), 0));
        }
        return counts;
      };
      const std::vector<int64_t> before = read();
      // At least 2 s: on loaded cores a live rank's heartbeat thread can wait that long to be
      // scheduled, and calling it lost would send the user after the wrong rank.
      std::this_thread::sleep_for(std::max<std::chrono::milliseconds>(
          3 * heartbeat->interval, std::chrono::milliseconds(2000)));
      const std::vector<int64_t> after = read();
      std::vector<int64_t> lost;
      for (int64_t r = 0; r < environment.world_size; ++r) {
        if (r != environment.rank && after[r] == before[r]) lost.push_back(r);
      }
      if (lost.empty()) return "";
      std::string text = lost.size() == 1 ? "rank " : "ranks ";
      for (size_t i = 0; i < lost.size(); ++i) {
        text += (i == 0 ? "" : ", ") + std::to_string(lost[i]);
      }
      return text;
    } catch (const std::exception&) {
      return environment.agent_store ? "the elastic agent's store"
                                     : "rank 0 (the host of the rendezvous store)";
    }
  }

  // The one line a failed collective reports (lost_ranks: 2-5 s).
  std::string failure_text(const std::string& what, const std::exception& error) {
    const std::string lost = lost_ranks();
    std::ostringstream text;
    text << "rank " << environment.rank << ": " << what << " failed: "
         << (lost.empty() ? std::string("no rank is known to be lost (one may hang, or the "
                                        "network failed)")
                          : "lost " + lost)
         << " (dist-timeout " << seconds_text(timeout) << "): " << error_text(error);
    return text.str();
  }

  [[noreturn]] static void wait_for_exit() {
    while (true) std::this_thread::sleep_for(std::chrono::hours(1));
  }

  [[noreturn]] void fail(const std::string& what, const std::exception& error) {
    std::unique_lock<std::mutex> lock(failure_mutex);
    if (fatal) {  // the watchdog's failure is being reported, and the process ends with it
      lock.unlock();
      wait_for_exit();
    }
    failed = true;
    any_failure = true;
    TORCH_CHECK(false, failure_text(what, error));
  }

  // NCCL's watchdog ends the process from its thread (std::terminate): reported as a failed
  // collective, then exit status 1, as the CLI's for an error.
  [[noreturn]] void end_fatally(const std::exception& error,
                                const std::function<void(const std::string&)>& report) {
    std::unique_lock<std::mutex> lock(failure_mutex);
    if (failed) {  // a caller's collective failed first: its error is on its way out
      lock.unlock();
      std::this_thread::sleep_for(kExitGrace);
      std::_Exit(1);
    }
    failed = true;
    fatal = true;
    any_failure = true;
    const std::string message = failure_text("a collective", error);
    std::fflush(nullptr);  // what the rank printed before
    report(message);
    std::fflush(nullptr);
    std::_Exit(1);
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
    try {
      work->wait();
    } catch (const std::exception& error) {
      fail(what, error);
    }
  }

  // Starts a collective and waits for it (NCCL: the current CUDA stream waits).
  void run(const std::string& what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = start();
    } catch (const std::exception& error) {
      fail(what, error);
    }
    wait(work, what);
  }

  // The tensor the backend reduces: `tensor` itself on the group's device; under NCCL a CPU
  // tensor's copy on the GPU (the step's and the evaluation's sums: a few numbers).
  torch::Tensor staged(const torch::Tensor& tensor) const {
    TORCH_INTERNAL_ASSERT(tensor.is_contiguous());
    if (tensor.device() == device) return tensor;
    TORCH_INTERNAL_ASSERT(tensor.is_cpu() && device.is_cuda(), "a ", tensor.device(),
                          " tensor for the ", backend, " process group on ", device);
    return tensor.to(device);
  }

  ~Impl() {
    stop_heartbeat();
#ifdef DENSENET_WITH_NCCL
    if (group && backend == "nccl") {
      if (failed) {
        // Left to the process's end: shutdown() would wait for collectives that never complete,
        // and ncclCommAbort can hang too (PyTorch's reason for SkipCleanUp); its watchdog may
        // still end the process, which on_terminate lets the caller's error line come first.
        (void)group.release();
        return;
      }
      try {
        group->shutdown();  // as destroy_process_group(): NCCL's communicator is finished
      } catch (const std::exception&) {
        // Ending anyway.
      }
    }
#endif
  }
};

namespace {

// The process groups alive, for the terminate handler; each entry reports through its group.
std::mutex fatal_mutex;
using FatalReport = std::function<void(const std::string&)>;
using FatalEnd = std::function<void(const std::exception&, const FatalReport&)>;
std::vector<std::pair<std::weak_ptr<void>, FatalEnd>> fatal_ends;
FatalReport fatal_report = [](const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
};
std::terminate_handler previous_terminate = nullptr;
bool terminate_installed = false;

// A c10::Error that ends the process from a thread of its own: NCCL's watchdog, rethrowing a
// collective's failure or timeout (TORCH_NCCL_ASYNC_ERROR_HANDLING 1 or 3).
[[noreturn]] void on_terminate() {
  const std::exception_ptr error = std::current_exception();
  FatalEnd end;
  FatalReport report;
  {
    std::lock_guard<std::mutex> lock(fatal_mutex);
    for (const auto& [alive, end_group] : fatal_ends) {
      if (!alive.expired()) end = end_group;
    }
    report = fatal_report;
  }
  if (error && end) {
    try {
      std::rethrow_exception(error);
    } catch (const c10::Error& failure) {
      end(failure, report);  // does not return
    } catch (...) {
      // Not a collective's failure: the default handling.
    }
  }
  if (error && !end && any_failure) {
    // A failed group's watchdog, after the group was left behind: the caller's error ends the
    // process (main() prints it and returns).
    std::this_thread::sleep_for(kExitGrace);
    std::_Exit(1);
  }
  if (previous_terminate != nullptr) previous_terminate();
  std::abort();
}

// `end` reports a fatal error for `group` while it lives (the last group made wins).
void watch_for_fatal_errors(const std::shared_ptr<void>& group, FatalEnd end) {
  std::lock_guard<std::mutex> lock(fatal_mutex);
  fatal_ends.erase(std::remove_if(fatal_ends.begin(), fatal_ends.end(),
                                  [](const auto& entry) { return entry.first.expired(); }),
                   fatal_ends.end());
  fatal_ends.emplace_back(group, std::move(end));
  if (!terminate_installed) previous_terminate = std::set_terminate(on_terminate);
  terminate_installed = true;
}

}  // namespace

void ProcessGroup::on_fatal_error(std::function<void(const std::string& message)> report) {
  std::lock_guard<std::mutex> lock(fatal_mutex);
  fatal_report = std::move(report);
}

struct ProcessGroup::Work::State {
  std::shared_ptr<ProcessGroup::Impl> group;
  c10::intrusive_ptr<c10d::Work> work;
  std::string what;
};

ProcessGroup::Work::Work() = default;
ProcessGroup::Work::~Work() = default;
ProcessGroup::Work::Work(Work&&) noexcept = default;
ProcessGroup::Work& ProcessGroup::Work::operator=(Work&&) noexcept = default;

void ProcessGroup::Work::wait() {
  if (!state_) return;
  const std::unique_ptr<State> state = std::move(state_);
  state->group->wait(state->work, state->what);
}

namespace {

// ProcessGroupGloo over `store`, connected over `interfaces` (none: see gloo_devices).
c10::intrusive_ptr<Collectives> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store,
                                                const Environment& environment,
                                                std::chrono::milliseconds timeout,
                                                const std::vector<std::string>& interfaces) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices = gloo_devices(environment, interfaces);
  // One Gloo thread: buckets are reduced in order anyway, and the cores compute.
  options->threads = 1;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(
      store, static_cast<int>(environment.rank), static_cast<int>(environment.world_size), options);
}

// What each backend needs checked before the rendezvous (a mistake there is the user's, exit 2,
// and found before other ranks wait for this one).
void check_backend(const std::string& backend, const torch::Device& device,
                   const Environment& environment, std::chrono::milliseconds timeout) {
  TORCH_CHECK(timeout.count() > 0, "dist-timeout must be > 0");
  if (backend == "gloo") {
    TORCH_CHECK(device.is_cpu(), "the gloo process group reduces CPU tensors, not ", device);
    return;
  }
  TORCH_CHECK(backend == "nccl", "process group backend '", backend,
              "' is not supported: use gloo or nccl");
  TORCH_CHECK(nccl_available(), "process group backend nccl: this build's LibTorch (",
              TORCH_VERSION, ") has no ProcessGroupNCCL");
  TORCH_CHECK(device.is_cuda() && device.has_index(),
              "the nccl process group computes on one GPU (cuda:N), not ", device);
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  TORCH_CHECK_VALUE(device.index() < count, "rank ", environment.rank, " computes on ", device,
                    " (LOCAL_RANK ", environment.local_rank, "), but ", count,
                    count == 1 ? " CUDA device is" : " CUDA devices are",
                    " visible: start fewer ranks on this machine, or choose GPUs with --gpus "
                    "(or CUDA_VISIBLE_DEVICES)");
  nccl_settings(timeout, [](const char* name) { return std::getenv(name); });
}

}  // namespace

ProcessGroup::ProcessGroup(const Environment& environment, std::chrono::milliseconds timeout,
                           const std::string& backend, const std::string& interface,
                           const torch::Device& device)
    : impl_(std::make_shared<Impl>()) {
  check_backend(backend, device, environment, timeout);
  Impl& impl = *impl_;
  impl.environment = environment;
  impl.timeout = timeout;
  impl.backend = backend;
  impl.device = device;
  check_resolves(environment.master_addr, "environment variable MASTER_ADDR");
  // Gloo's own connections (NCCL chooses its interfaces itself: NCCL_SOCKET_IFNAME).
  const std::vector<std::string> interfaces =
      backend == "gloo" ? gloo_interfaces(interface, std::getenv("GLOO_SOCKET_IFNAME"))
                        : std::vector<std::string>();
  const bool server = environment.rank == 0 && !environment.agent_store;
  const std::string where = environment.master_addr + ":" + std::to_string(environment.master_port);
  try {
    impl.store = impl.connect(server, /*worker=*/true);
  } catch (const std::exception& error) {
    TORCH_CHECK(false, "rank ", environment.rank, ": rendezvous at ", where, " failed",
                server ? " (rank 0 hosts the store there: is MASTER_PORT in use?)"
                       : " (is rank 0 running, and MASTER_ADDR:MASTER_PORT its address?)",
                " within dist-timeout ", seconds_text(timeout), ": ", error_text(error));
  }
  try {
#ifdef DENSENET_WITH_NCCL
    if (backend == "nccl") {
      impl.group =
          detail::make_nccl_group(impl.store, static_cast<int>(environment.rank),
                                  static_cast<int>(environment.world_size), timeout, device);
    }
#endif
    if (backend == "gloo")
      impl.group = make_gloo_group(impl.store, environment, timeout, interfaces);
  } catch (const std::exception& error) {
    TORCH_CHECK(false, "rank ", environment.rank, ": the ", environment.world_size,
                " ranks did not all join at ", where, " within dist-timeout ",
                seconds_text(timeout), ": ", error_text(error));
  }
  impl.start_heartbeat(
      std::clamp(timeout / 20, std::chrono::milliseconds(50), std::chrono::milliseconds(1000)));
  const std::weak_ptr<Impl> weak = impl_;
  watch_for_fatal_errors(impl_, [weak](const std::exception& error, const FatalReport& report) {
    if (const std::shared_ptr<Impl> impl = weak.lock()) impl->end_fatally(error, report);
  });
}

ProcessGroup::~ProcessGroup() = default;

int64_t ProcessGroup::rank() const {
  return impl_->environment.rank;
}
int64_t ProcessGroup::world_size() const {
  return impl_->environment.world_size;
}
const Environment& ProcessGroup::environment() const {
  return impl_->environment;
}
std::chrono::milliseconds ProcessGroup::timeout() const {
  return impl_->timeout;
}
const std::string& ProcessGroup::backend() const {
  return impl_->backend;
}
torch::Device ProcessGroup::device() const {
  return impl_->device;
}

ProcessGroup::Work ProcessGroup::allreduce_async(const torch::Tensor& tensor,
                                                 const std::string& what) {
  TORCH_INTERNAL_ASSERT(tensor.is_contiguous() && tensor.device() == impl_->device);
  std::vector<at::Tensor> tensors = {tensor};
  Work work;
  work.state_ = std::make_unique<Work::State>();
  work.state_->group = impl_;
  work.state_->what = what;
  try {
    // NCCL: its stream first waits for the current stream, where the gradient hooks copied the
    // bucket's gradients in (c10d's syncStream), as DDP's reducer relies on.
    work.state_->work = impl_->group->allreduce(tensors);
  } catch (const std::exception& error) {
    impl_->fail(what, error);
  }
  return work;
}

void ProcessGroup::allreduce(const torch::Tensor& tensor, Reduction reduction,
                             const std::string& what) {
  Impl& impl = *impl_;
  const torch::Tensor target = impl.staged(tensor);
  std::vector<at::Tensor> tensors = {target};
  c10d::AllreduceOptions options;
  options.reduceOp = reduction == Reduction::sum   ? c10d::ReduceOp::SUM
                     : reduction == Reduction::max ? c10d::ReduceOp::MAX
                                                   : c10d::ReduceOp::MIN;
  impl.run(what, [&] { return impl.group->allreduce(tensors, options); });
  if (!target.is_same(tensor)) tensor.copy_(target);  // waits for the result
}

void ProcessGroup::broadcast(const torch::Tensor& tensor, int64_t root, const std::string& what) {
  Impl& impl = *impl_;
  const torch::Tensor target = impl.staged(tensor);
  std::vector<at::Tensor> tensors = {target};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  impl.run(what, [&] { return impl.group->broadcast(tensors, options); });
  if (!target.is_same(tensor)) tensor.copy_(target);
}

void ProcessGroup::barrier(const std::string& what) {
  Impl& impl = *impl_;
  impl.run(what, [&] { return impl.group->barrier(); });
}

}  // namespace densenet::distributed
