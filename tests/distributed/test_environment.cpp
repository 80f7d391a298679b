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

TEST(DistributedEnvironment, ALaunchedRankIsDataParallelEvenAlone) {
  // `--gpus 0`, torchrun --nproc-per-node 1: a process group of one (NCCL on one GPU), as
  // torchvision's references take RANK and WORLD_SIZE.
  const Environment alone = from(
      {{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}});
  EXPECT_TRUE(alone.launched);
  EXPECT_TRUE(alone.distributed());
  EXPECT_EQ(alone.world_size, 1);
  EXPECT_EQ(alone.master_port, 29500);
  EXPECT_ERROR_CONTAINS(from({{"RANK", "0"}, {"WORLD_SIZE", "1"}}), "MASTER_ADDR is not set");
  // WORLD_SIZE=1 alone is still one process.
  EXPECT_FALSE(from({{"WORLD_SIZE", "1"}}).distributed());
  EXPECT_FALSE(from({}).launched);
}

std::map<std::string, std::string> as_map(const std::vector<std::string>& entries) {
  std::map<std::string, std::string> variables;
  for (const std::string& entry : entries) {
    const size_t equals = entry.find('=');
    EXPECT_TRUE(variables.emplace(entry.substr(0, equals), entry.substr(equals + 1)).second)
        << entry << " is set twice";
  }
  return variables;
}

TEST(DistributedEnvironment, TheLauncherGivesEachRankTorchrunsVariables) {
  Environment rank;
  rank.rank = 5;
  rank.world_size = 8;
  rank.local_rank = 1;
  rank.local_world_size = 4;
  rank.master_addr = "host0";
  rank.master_port = 29400;
  const std::vector<std::string> inherited = {"PATH=/usr/bin",
                                              "RANK=9",
                                              "MASTER_PORT=1",
                                              "TORCHELASTIC_USE_AGENT_STORE=True",
                                              "CUDA_VISIBLE_DEVICES=4,5,6,7",
                                              "RANKING=kept"};
  // --gpus: every rank sees the listed GPUs, rank r computes on the r-th (cuda:LOCAL_RANK).
  auto variables = as_map(rank_environment(inherited, rank, "5,4,7,6"));
  EXPECT_EQ(variables["CUDA_VISIBLE_DEVICES"], "5,4,7,6");
  EXPECT_EQ(variables["PATH"], "/usr/bin");
  EXPECT_EQ(variables["RANKING"], "kept");
  EXPECT_EQ(variables.count("TORCHELASTIC_USE_AGENT_STORE"), 0u);
  const Environment read = from(variables);
  EXPECT_TRUE(read.launched);
  EXPECT_EQ(read.rank, 5);
  EXPECT_EQ(read.world_size, 8);
  EXPECT_EQ(read.local_rank, 1);
  EXPECT_EQ(read.local_world_size, 4);
  EXPECT_EQ(read.master_addr, "host0");
  EXPECT_EQ(read.master_port, 29400);
  // Without --gpus the launcher's own CUDA_VISIBLE_DEVICES is passed on.
  variables = as_map(rank_environment(inherited, rank, ""));
  EXPECT_EQ(variables["CUDA_VISIBLE_DEVICES"], "4,5,6,7");
  EXPECT_EQ(variables["RANK"], "5");
}

}  // namespace
}  // namespace densenet::distributed
