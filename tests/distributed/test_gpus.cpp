// Which GPU each rank computes on (--gpus, device cuda in a data-parallel run): pure functions,
// tested without a GPU.
#include "densenet/distributed/gpus.h"

#include <gtest/gtest.h>

#include "support/expect_error.h"

namespace densenet::distributed {
namespace {

Environment rank_of(int64_t local_rank, int64_t local_world_size) {
  Environment env;
  env.launched = true;
  env.rank = env.local_rank = local_rank;
  env.world_size = env.local_world_size = local_world_size;
  return env;
}

TEST(Gpus, ParsesTheOriginalProjectsList) {
  EXPECT_EQ(parse_gpus("0,1,2,3"), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(parse_gpus("3,1"), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(parse_gpus("7"), (std::vector<int64_t>{7}));
}

TEST(Gpus, RefusesAMalformedListInOneLine) {
  EXPECT_ERROR_CONTAINS(parse_gpus(""), "--gpus '': no GPU: give GPU indices separated by commas");
  EXPECT_ERROR_CONTAINS(parse_gpus("0,,1"), "--gpus '0,,1': '' is not a GPU index");
  EXPECT_ERROR_CONTAINS(parse_gpus("0,"), "--gpus '0,': '' is not a GPU index");
  EXPECT_ERROR_CONTAINS(parse_gpus("0, 1"), "--gpus '0, 1': ' 1' is not a GPU index");
  EXPECT_ERROR_CONTAINS(parse_gpus("-1"), "'-1' is not a GPU index");
  EXPECT_ERROR_CONTAINS(parse_gpus("cuda:0"), "'cuda:0' is not a GPU index");
  EXPECT_ERROR_CONTAINS(parse_gpus("0-3"),
                        "'0-3' is not a GPU index: give GPU indices separated by "
                        "commas, e.g. --gpus 0,1,2,3");
  EXPECT_ERROR_CONTAINS(parse_gpus("1,2,1"), "--gpus '1,2,1': GPU 1 is listed twice");
  EXPECT_ERROR_CONTAINS(parse_gpus("99999"), "'99999' is not a GPU index");
}

TEST(Gpus, VisibleDevicesListTheChosenGpusInOrder) {
  EXPECT_EQ(visible_devices_for({0, 1, 2, 3}, 8, nullptr), "0,1,2,3");
  EXPECT_EQ(visible_devices_for({6, 2}, 8, nullptr), "6,2");
  // Under the launcher's own CUDA_VISIBLE_DEVICES the indices count its entries, as in PyTorch.
  EXPECT_EQ(visible_devices_for({1, 0}, 3, "4,5,7"), "5,4");
  EXPECT_EQ(visible_devices_for({1}, 2, "GPU-aaa,GPU-bbb"), "GPU-bbb");
}

TEST(Gpus, RefusesGpusThatAreNotThere) {
  EXPECT_ERROR_CONTAINS(visible_devices_for({0}, 0, nullptr),
                        "--gpus: no CUDA device is available to this program: it needs a GPU and "
                        "a LibTorch built with CUDA");
  EXPECT_ERROR_CONTAINS(visible_devices_for({0, 2}, 2, nullptr),
                        "--gpus: GPU 2 is not available: 2 CUDA devices are visible, numbered "
                        "from 0");
  EXPECT_ERROR_CONTAINS(visible_devices_for({1}, 1, "3"),
                        "GPU 1 is not available: 1 CUDA device is visible "
                        "(CUDA_VISIBLE_DEVICES=3), numbered from 0");
  check_gpu_count(2, 2);
  EXPECT_ERROR_CONTAINS(check_gpu_count(4, 1),
                        "device cuda: 4 ranks on this machine compute on cuda:0 to cuda:3, but 1 "
                        "CUDA device is visible");
}

TEST(Gpus, RankDeviceIsCudaLocalRank) {
  EXPECT_EQ(rank_device("cuda", rank_of(2, 4)), torch::Device("cuda:2"));
  EXPECT_EQ(rank_device("cuda", rank_of(0, 1)), torch::Device("cuda:0"));
  EXPECT_EQ(rank_device("cpu", rank_of(2, 4)), torch::Device("cpu"));
  // A single process keeps the device as given (cuda: the current device).
  EXPECT_EQ(rank_device("cuda", Environment{}), torch::Device("cuda"));
  EXPECT_EQ(rank_device("cuda:1", Environment{}), torch::Device("cuda:1"));
  // One rank per machine may name its GPU; ranks of one machine may not share one.
  EXPECT_EQ(rank_device("cuda:1", rank_of(0, 1)), torch::Device("cuda:1"));
  EXPECT_ERROR_CONTAINS(rank_device("cuda:1", rank_of(1, 2)),
                        "device cuda:1: the 2 ranks of this machine would share that GPU (NCCL "
                        "refuses it): use device cuda (rank r computes on cuda:LOCAL_RANK), or "
                        "--gpus");
}

}  // namespace
}  // namespace densenet::distributed
