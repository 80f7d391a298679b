#include "densenet/train/memory_choice.h"
#include "densenet/util/machine.h"

#include "densenet/model/presets.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace densenet {
namespace {
namespace fs = std::filesystem;

// A fake /proc/meminfo and /sys/fs/cgroup (v2 files at the root, v1 under memory/).
struct FakeMachine {
  fs::path root;
  explicit FakeMachine(const std::string& name)
      : root(fs::temp_directory_path() / ("densenet_machine_test_" + name)) {
    fs::remove_all(root);
    fs::create_directories(root / "cgroup" / "memory");
    write("meminfo", "MemTotal:       33554432 kB\nMemAvailable:   20971520 kB\n");  // 20 GiB
  }
  ~FakeMachine() { fs::remove_all(root); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(root / name) << text;
  }
  // A cgroup's limit and usage files, in bytes.
  void limit(const std::string& limit_file, int64_t limit, const std::string& usage_file,
             int64_t usage) const {
    write(limit_file, std::to_string(limit) + "\n");
    write(usage_file, std::to_string(usage) + "\n");
  }
  MachinePaths paths() const { return {(root / "meminfo").string(), (root / "cgroup").string()}; }
};

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(Machine, AvailableMemoryIsTheSmallestOfMemAvailableAndTheCgroupLimits) {
  FakeMachine machine("limits");
  AvailableMemory available = available_memory(machine.paths());
  EXPECT_EQ(available.bytes, 20 * 1024 * kMiB);
  EXPECT_EQ(available.source, "MemAvailable");
  // cgroup v2: memory.max minus memory.current.
  machine.limit("cgroup/memory.max", 2048 * kMiB, "cgroup/memory.current", 512 * kMiB);
  available = available_memory(machine.paths());
  EXPECT_EQ(available.bytes, 1536 * kMiB);
  EXPECT_EQ(available.source, "cgroup memory.max");
  // "max" is no limit.
  machine.write("cgroup/memory.max", "max\n");
  EXPECT_EQ(available_memory(machine.paths()).source, "MemAvailable");
  // cgroup v1 (older container runtimes, batch schedulers): limit_in_bytes minus usage.
  machine.limit("cgroup/memory/memory.limit_in_bytes", 1024 * kMiB,
                "cgroup/memory/memory.usage_in_bytes", 256 * kMiB);
  available = available_memory(machine.paths());
  EXPECT_EQ(available.bytes, 768 * kMiB);
  EXPECT_EQ(available.source, "cgroup memory.limit_in_bytes");
  // v1's "no limit" is a huge page-counter value, not a limit.
  machine.write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(available_memory(machine.paths()).source, "MemAvailable");
}

// memory: auto under a container's limit chooses what fits the limit, where MemAvailable (the
// host's) would have allowed the fastest mode.
TEST(Machine, MemoryAutoChoosesWithinACgroupLimit) {
  DenseNetOptions options = preset_options("densenet-bc-100");
  options.in_channels(1).num_classes(10).input_size(28);
  const ArchitecturePlan plan = plan_architecture(options);
  const int64_t efficient = predicted_step_bytes(plan, MemoryMode::kEfficient, 64, 1, 1);
  FakeMachine machine("auto");
  const int64_t host_budget = train::default_memory_budget(available_memory(machine.paths()));
  ASSERT_GT(host_budget, efficient);
  EXPECT_EQ(train::choose_memory(plan, 64, host_budget, c10::DeviceType::CPU, 1).mode,
            MemoryMode::kEfficient);
  // A limit that leaves 1.25x of what minimal needs (budget: 80% of it = its need exactly).
  const int64_t minimal = predicted_step_bytes(plan, MemoryMode::kMinimal, 64, 1, 1);
  machine.write("cgroup/memory.max", std::to_string(minimal / 8 * 10 + 64) + "\n");
  machine.write("cgroup/memory.current", "0\n");
  const int64_t budget = train::default_memory_budget(available_memory(machine.paths()));
  ASSERT_LT(budget, efficient);
  const train::MemoryChoice choice =
      train::choose_memory(plan, 64, budget, c10::DeviceType::CPU, 1);
  EXPECT_EQ(choice.mode, MemoryMode::kMinimal);
  EXPECT_LE(choice.predicted_bytes, budget);
}

TEST(Machine, UsableCpusIsAtLeastOne) {
  EXPECT_GE(usable_cpus(), 1);
}

}  // namespace
}  // namespace densenet
