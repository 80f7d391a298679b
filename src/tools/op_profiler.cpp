#include "densenet/tools/op_profiler.h"

#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

namespace densenet {

namespace {

using Clock = std::chrono::steady_clock;

struct Frame {
  Clock::time_point start;
  double children_ms = 0;
};

struct Totals {
  std::mutex mutex;
  std::map<std::string, OpProfiler::Entry> entries;
};

Totals& totals() {
  static Totals instance;
  return instance;
}

std::atomic<bool> active{false};
thread_local std::vector<Frame> stack;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  stack.push_back({Clock::now(), 0});
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (stack.empty()) return;  // began before the profiler
  const Frame frame = stack.back();
  stack.pop_back();
  const double elapsed =
      std::chrono::duration<double, std::milli>(Clock::now() - frame.start).count();
  if (!stack.empty()) stack.back().children_ms += elapsed;
  Totals& all = totals();
  std::lock_guard<std::mutex> lock(all.mutex);
  OpProfiler::Entry& entry = all.entries[fn.name()];
  entry.self_ms += elapsed - frame.children_ms;
  entry.calls += 1;
}

}  // namespace

OpProfiler::OpProfiler() {
  TORCH_CHECK(!active.exchange(true), "only one OpProfiler may be alive at a time");
  reset();
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(on_start, on_end));
}

OpProfiler::~OpProfiler() {
  at::removeCallback(handle_);
  active = false;
}

std::vector<OpProfiler::Entry> OpProfiler::entries() const {
  Totals& all = totals();
  std::lock_guard<std::mutex> lock(all.mutex);
  std::vector<Entry> result;
  for (const auto& item : all.entries) {
    result.push_back(item.second);
    result.back().name = item.first;
  }
  std::sort(result.begin(), result.end(),
            [](const Entry& a, const Entry& b) { return a.self_ms > b.self_ms; });
  return result;
}

void OpProfiler::reset() {
  Totals& all = totals();
  std::lock_guard<std::mutex> lock(all.mutex);
  all.entries.clear();
}

}  // namespace densenet
