#include "densenet/distributed/process_group.h"

#include "densenet/distributed/network.h"

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace densenet::distributed {
namespace {

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

std::string choose_backend(const std::string& requested, const torch::Device& device) {
  TORCH_CHECK_VALUE(requested == "auto" || requested == "gloo" || requested == "nccl",
                    "config key 'dist-backend': unknown value '", requested,
                    "': use one of auto, gloo, nccl");
  const std::string backend = requested == "auto"
                                  ? (device.is_cuda() ? std::string("nccl") : std::string("gloo"))
                                  : requested;
  // NCCL would be created here (c10d::ProcessGroupNCCL) for CUDA devices when the LibTorch has
  // it; this version trains data-parallel on CPU only.
  TORCH_CHECK_VALUE(backend != "nccl",
                    "dist-backend nccl (CUDA) is not supported by this version of densenet: train "
                    "data-parallel on CPU with device cpu and dist-backend gloo");
  TORCH_CHECK_VALUE(!device.is_cuda(),
                    "dist-backend gloo here reduces CPU tensors: use device cpu");
  return backend;
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

struct ProcessGroup::Impl {
  Environment environment;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::shared_ptr<Heartbeat> heartbeat = std::make_shared<Heartbeat>();
  std::thread heartbeat_thread;
  bool failed = false;  // a collective failed: the run ends, nothing is waited for

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

  [[noreturn]] void fail(const std::string& what, const std::exception& error) {
    failed = true;
    const std::string lost = lost_ranks();
    TORCH_CHECK(false, "rank ", environment.rank, ": ", what, " failed: ",
                lost.empty() ? std::string("no rank is known to be lost (one may hang, or the "
                                           "network failed)")
                             : "lost " + lost,
                " (dist-timeout ", seconds_text(timeout), "): ", error_text(error));
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
    try {
      work->wait();
    } catch (const std::exception& error) {
      fail(what, error);
    }
  }

  ~Impl() { stop_heartbeat(); }
};

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

ProcessGroup::ProcessGroup(const Environment& environment, std::chrono::milliseconds timeout,
                           const std::string& backend, const std::string& interface)
    : impl_(std::make_shared<Impl>()) {
  TORCH_CHECK(backend == "gloo", "process group backend '", backend,
              "' is not supported: use gloo");
  TORCH_CHECK(timeout.count() > 0, "dist-timeout must be > 0");
  Impl& impl = *impl_;
  impl.environment = environment;
  impl.timeout = timeout;
  check_resolves(environment.master_addr, "environment variable MASTER_ADDR");
  const std::vector<std::string> interfaces =
      gloo_interfaces(interface, std::getenv("GLOO_SOCKET_IFNAME"));
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
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices = gloo_devices(environment, interfaces);
    // One Gloo thread: buckets are reduced in order anyway, and the cores compute.
    options->threads = 1;
    impl.group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        impl.store, static_cast<int>(environment.rank), static_cast<int>(environment.world_size),
        options);
  } catch (const std::exception& error) {
    TORCH_CHECK(false, "rank ", environment.rank, ": the ", environment.world_size,
                " ranks did not all join at ", where, " within dist-timeout ",
                seconds_text(timeout), ": ", error_text(error));
  }
  impl.start_heartbeat(
      std::clamp(timeout / 20, std::chrono::milliseconds(50), std::chrono::milliseconds(1000)));
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

ProcessGroup::Work ProcessGroup::allreduce_async(const torch::Tensor& tensor,
                                                 const std::string& what) {
  TORCH_INTERNAL_ASSERT(tensor.is_contiguous() && !tensor.is_cuda());
  std::vector<at::Tensor> tensors = {tensor};
  Work work;
  work.state_ = std::make_unique<Work::State>();
  work.state_->group = impl_;
  work.state_->what = what;
  try {
    work.state_->work = impl_->group->allreduce(tensors);
  } catch (const std::exception& error) {
    impl_->fail(what, error);
  }
  return work;
}

void ProcessGroup::allreduce(const torch::Tensor& tensor, Reduction reduction,
                             const std::string& what) {
  TORCH_INTERNAL_ASSERT(tensor.is_contiguous() && !tensor.is_cuda());
  std::vector<at::Tensor> tensors = {tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = reduction == Reduction::sum   ? c10d::ReduceOp::SUM
                     : reduction == Reduction::max ? c10d::ReduceOp::MAX
                                                   : c10d::ReduceOp::MIN;
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->group->allreduce(tensors, options);
  } catch (const std::exception& error) {
    impl_->fail(what, error);
  }
  impl_->wait(work, what);
}

void ProcessGroup::broadcast(const torch::Tensor& tensor, int64_t root, const std::string& what) {
  TORCH_INTERNAL_ASSERT(tensor.is_contiguous() && !tensor.is_cuda());
  std::vector<at::Tensor> tensors = {tensor};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->group->broadcast(tensors, options);
  } catch (const std::exception& error) {
    impl_->fail(what, error);
  }
  impl_->wait(work, what);
}

void ProcessGroup::barrier(const std::string& what) {
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->group->barrier();
  } catch (const std::exception& error) {
    impl_->fail(what, error);
  }
  impl_->wait(work, what);
}

}  // namespace densenet::distributed
