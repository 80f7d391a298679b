// How a rank sets up ProcessGroupNCCL (the watchdog's timeout, PyTorch's variables, the log),
// computed without a GPU; and that the build has NCCL exactly where its LibTorch does.
#include "densenet/distributed/nccl_settings.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "support/expect_error.h"

namespace densenet::distributed {
namespace {

using namespace std::chrono_literals;
using Variables = std::vector<std::pair<std::string, std::string>>;

NcclSettings settings_with(const std::map<std::string, std::string>& variables,
                           std::chrono::milliseconds timeout = 30s) {
  return nccl_settings(timeout, [&](const char* name) -> const char* {
    const auto found = variables.find(name);
    return found == variables.end() ? nullptr : found->second.c_str();
  });
}

TEST(NcclSettings, BuiltWhereTheLibTorchHasProcessGroupNccl) {
  // src/distributed/CMakeLists.txt's check, as the build found it (pip's CUDA LibTorch 2.11 has
  // ProcessGroupNCCL, Debian's CPU LibTorch 1.13 does not).
  EXPECT_EQ(nccl_available(), DENSENET_TEST_EXPECTS_NCCL != 0);
}

TEST(NcclSettings, TheWatchdogEndsARankAfterDistTimeout) {
  const NcclSettings settings = settings_with({}, 45s);
  EXPECT_EQ(settings.timeout, 45s);
  EXPECT_EQ(settings.variables, (Variables{{"TORCH_NCCL_ASYNC_ERROR_HANDLING", "3"},
                                           {"TORCH_NCCL_DUMP_ON_TIMEOUT", "0"},
                                           {"TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC", "250"}}));
  EXPECT_TRUE(settings.quiet_log);
  EXPECT_ERROR_CONTAINS(settings_with({}, 0ms), "dist-timeout must be > 0");
}

TEST(NcclSettings, TheUsersVariablesStay) {
  const NcclSettings settings = settings_with({{"TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"},
                                               {"TORCH_NCCL_DUMP_ON_TIMEOUT", "1"},
                                               {"TORCH_CPP_LOG_LEVEL", "INFO"}});
  EXPECT_EQ(settings.variables, Variables{});  // a dump asked for keeps PyTorch's wait for it
  EXPECT_FALSE(settings.quiet_log);
  EXPECT_EQ(settings_with({{"NCCL_ASYNC_ERROR_HANDLING", "3"},
                           {"TORCH_NCCL_DUMP_ON_TIMEOUT", "0"},
                           {"TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC", "5000"}})
                .variables,
            Variables{});
}

TEST(NcclSettings, RefusesErrorHandlingThatWouldOutliveALostRank) {
  EXPECT_ERROR_CONTAINS(settings_with({{"TORCH_NCCL_ASYNC_ERROR_HANDLING", "0"}}),
                        "environment variable TORCH_NCCL_ASYNC_ERROR_HANDLING=0: a rank would "
                        "wait for a lost one beyond dist-timeout; unset it (densenet uses 3, "
                        "PyTorch's default: NCCL's watchdog ends the rank) or set 1 or 3");
  EXPECT_ERROR_CONTAINS(settings_with({{"NCCL_ASYNC_ERROR_HANDLING", "2"}}),
                        "environment variable NCCL_ASYNC_ERROR_HANDLING=2: a rank would go on "
                        "with aborted communicators");
  EXPECT_ERROR_CONTAINS(settings_with({{"TORCH_NCCL_ASYNC_ERROR_HANDLING", "yes"}}),
                        "TORCH_NCCL_ASYNC_ERROR_HANDLING=yes: not one of PyTorch's modes 0 to 3");
  // The new name wins, as in PyTorch.
  EXPECT_NO_THROW(settings_with(
      {{"TORCH_NCCL_ASYNC_ERROR_HANDLING", "3"}, {"NCCL_ASYNC_ERROR_HANDLING", "0"}}));
}

}  // namespace
}  // namespace densenet::distributed
