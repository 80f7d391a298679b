#include "densenet/distributed/environment.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "support/expect_error.h"

namespace densenet::distributed {
namespace {

Environment from(const std::map<std::string, std::string>& variables) {
  return environment_from([&](const char* name) -> const char* {
    const auto found = variables.find(name);
    return found == variables.end() ? nullptr : found->second.c_str();
  });
}

std::map<std::string, std::string> torchrun(const std::string& rank) {
  return {{"RANK", rank},
          {"WORLD_SIZE", "4"},
          {"LOCAL_RANK", rank},
          {"LOCAL_WORLD_SIZE", "4"},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", "29500"}};
}

TEST(DistributedEnvironment, NoVariablesIsOneProcess) {
  const Environment env = from({});
  EXPECT_FALSE(env.distributed());
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.rank, 0);
}

TEST(DistributedEnvironment, ReadsTorchrunVariables) {
  auto variables = torchrun("3");
  variables["TORCHELASTIC_USE_AGENT_STORE"] = "True";
  variables["TORCHELASTIC_RESTART_COUNT"] = "2";
  const Environment env = from(variables);
  EXPECT_TRUE(env.distributed());
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_rank, 3);
  EXPECT_EQ(env.local_world_size, 4);
  EXPECT_EQ(env.master_addr, "127.0.0.1");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_TRUE(env.agent_store);
  EXPECT_EQ(env.restart_count, 2);
  EXPECT_FALSE(from(torchrun("0")).agent_store);
}

TEST(DistributedEnvironment, LocalVariablesDefaultToOneNode) {
  const Environment env = from(
      {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "localhost"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 2);
}

TEST(DistributedEnvironment, RefusesBadValuesWithTheVariablesName) {
  auto variables = torchrun("4");
  EXPECT_ERROR_CONTAINS(from(variables), "RANK=4 is outside [0, WORLD_SIZE=4)");
  variables = torchrun("-1");
  EXPECT_ERROR_CONTAINS(from(variables), "RANK=-1 is outside [0, WORLD_SIZE=4)");
  variables = torchrun("1");
  variables["WORLD_SIZE"] = "2x";
  EXPECT_ERROR_CONTAINS(from(variables), "WORLD_SIZE='2x' is not a whole number");
  variables = torchrun("1");
  variables["RANK"] = "";
  EXPECT_ERROR_CONTAINS(from(variables), "RANK='' is not a whole number");
  variables = torchrun("1");
  variables["WORLD_SIZE"] = "0";
  EXPECT_ERROR_CONTAINS(from(variables), "WORLD_SIZE=0 must be >= 1");
  variables = torchrun("1");
  variables["LOCAL_RANK"] = "4";
  EXPECT_ERROR_CONTAINS(from(variables), "LOCAL_RANK=4 is outside [0, LOCAL_WORLD_SIZE=4)");
  variables = torchrun("1");
  variables["LOCAL_WORLD_SIZE"] = "3";
  variables["LOCAL_RANK"] = "1";
  EXPECT_ERROR_CONTAINS(from(variables), "WORLD_SIZE=4 is not a multiple of LOCAL_WORLD_SIZE=3");
  variables = torchrun("1");
  variables.erase("MASTER_ADDR");
  EXPECT_ERROR_CONTAINS(from(variables), "MASTER_ADDR is not set");
  variables = torchrun("1");
  variables.erase("MASTER_PORT");
  EXPECT_ERROR_CONTAINS(from(variables), "MASTER_PORT is not set");
  variables = torchrun("1");
  variables["MASTER_PORT"] = "70000";
  EXPECT_ERROR_CONTAINS(from(variables), "MASTER_PORT=70000 is not a TCP port");
  variables = torchrun("1");
  variables.erase("RANK");
  EXPECT_ERROR_CONTAINS(from(variables), "WORLD_SIZE=4 is set but RANK is not");
  EXPECT_ERROR_CONTAINS(from({{"RANK", "0"}}), "RANK=0 is set but WORLD_SIZE is not");
}

}  // namespace
}  // namespace densenet::distributed
