// Two ranks in two threads of this process, over loopback Gloo: the process group's
// collectives, the gradient buckets and the replica helpers, and how a lost rank is reported.
#include "densenet/distributed/gradient_buckets.h"
#include "densenet/distributed/process_group.h"
#include "densenet/distributed/replicas.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/expect_error.h"

namespace densenet::distributed {
namespace {

using namespace std::chrono_literals;

int64_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

Environment loopback_rank(int64_t rank, int64_t world, int64_t port) {
  Environment env;
  env.rank = env.local_rank = rank;
  env.world_size = env.local_world_size = world;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  return env;
}

// Runs `body(group)` on `world` ranks, one thread each, Gloo over `interface` ("": the
// loopback address); an exception fails the test.
void on_ranks(int64_t world, std::chrono::milliseconds timeout,
              const std::function<void(ProcessGroup&)>& body, const std::string& interface = "") {
  const int64_t port = free_port();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(world));
  for (int64_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        ProcessGroup group(loopback_rank(r, world, port), timeout, "gloo", interface);
        body(group);
      } catch (const c10::Error& error) {
        errors[static_cast<size_t>(r)] = error.what_without_backtrace();
      } catch (const std::exception& error) {
        errors[static_cast<size_t>(r)] = error.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int64_t r = 0; r < world; ++r) {
    EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
  }
}

TEST(ProcessGroup, CollectivesOverTwoRanks) {
  on_ranks(2, 10s, [](ProcessGroup& group) {
    const auto r = static_cast<double>(group.rank());
    EXPECT_EQ(group.world_size(), 2);
    torch::Tensor sum = torch::full({3}, r + 1, torch::kFloat32);
    group.allreduce(sum, Reduction::sum, "sum");
    EXPECT_TRUE(torch::equal(sum, torch::full({3}, 3.0f)));
    torch::Tensor high = torch::tensor({r, -r}, torch::kFloat64);
    torch::Tensor low = high.clone();
    group.allreduce(high, Reduction::max, "max");
    group.allreduce(low, Reduction::min, "min");
    EXPECT_TRUE(torch::equal(high, torch::tensor({1.0, 0.0}, torch::kFloat64)));
    EXPECT_TRUE(torch::equal(low, torch::tensor({0.0, -1.0}, torch::kFloat64)));
    torch::Tensor value = torch::full({2, 2}, r * 10, torch::kInt64);
    group.broadcast(value, 1, "broadcast");
    EXPECT_TRUE(torch::equal(value, torch::full({2, 2}, 10, torch::kInt64)));
    torch::Tensor later = torch::full({4}, r, torch::kFloat32);
    ProcessGroup::Work work = group.allreduce_async(later, "async");
    work.wait();
    work.wait();  // a no-op
    EXPECT_TRUE(torch::equal(later, torch::full({4}, 1.0f)));
    group.barrier("barrier");
  });
}

torch::nn::Sequential tiny_model() {
  return torch::nn::Sequential(torch::nn::Linear(5, 7), torch::nn::Tanh(), torch::nn::Linear(7, 6),
                               torch::nn::Tanh(), torch::nn::Linear(6, 3));
}

torch::nn::Sequential copy_of(const torch::nn::Sequential& model) {
  return torch::nn::Sequential(
      std::dynamic_pointer_cast<torch::nn::SequentialImpl>(model->clone()));
}

// Two pieces' backward (gradient accumulation), the second armed when `buckets` is given.
void two_pieces(torch::nn::Sequential& model, const torch::Tensor& x, GradientBuckets* buckets) {
  for (int64_t piece = 0; piece < 2; ++piece) {
    const torch::Tensor part = x.chunk(2)[static_cast<size_t>(piece)];
    if (buckets != nullptr && piece == 1) buckets->arm();
    model->forward(part).pow(2).sum().backward();
  }
}

TEST(GradientBuckets, AverageTheAccumulatedGradientsOverTheRanks) {
  torch::manual_seed(3);
  const torch::nn::Sequential base = tiny_model();
  const std::vector<torch::Tensor> inputs = {torch::randn({8, 5}), torch::randn({8, 5})};
  std::vector<torch::nn::Sequential> replicas = {copy_of(base), copy_of(base)};
  // The reference: each rank's accumulated gradients, averaged.
  std::vector<torch::Tensor> expected;
  for (size_t r = 0; r < 2; ++r) {
    torch::nn::Sequential model = copy_of(base);
    two_pieces(model, inputs[r], nullptr);
    const auto parameters = model->parameters();
    for (size_t k = 0; k < parameters.size(); ++k) {
      if (r == 0) {
        expected.push_back(parameters[k].grad().clone());
      } else {
        expected[k] = (expected[k] + parameters[k].grad()) / 2;
      }
    }
  }
  on_ranks(2, 10s, [&](ProcessGroup& group) {
    torch::nn::Sequential& model = replicas[static_cast<size_t>(group.rank())];
    // Not owned: the process group lives on this thread's stack for the whole body.
    const std::shared_ptr<ProcessGroup> shared(&group, [](ProcessGroup*) {});
    GradientBuckets buckets(model->parameters(), shared, /*bucket_bytes=*/64);
    // In reverse order, 3, 18, 6, 42, 7, 35 floats: no two neighbours fit 64 bytes together.
    EXPECT_EQ(buckets.num_buckets(), 6);
    EXPECT_EQ(buckets.bucket_numel(0), 3);  // the last layer's bias
    for (int step = 0; step < 2; ++step) {  // twice: the buckets are reused
      for (auto& p : model->parameters()) {
        if (p.grad().defined()) p.mutable_grad().zero_();
      }
      two_pieces(model, inputs[static_cast<size_t>(group.rank())], &buckets);
      EXPECT_GE(buckets.finish(), 0.0);
      const auto parameters = model->parameters();
      for (size_t k = 0; k < parameters.size(); ++k) {
        EXPECT_TRUE(torch::allclose(parameters[k].grad(), expected[k], 1e-6, 1e-7))
            << "parameter " << k << " on rank " << group.rank();
      }
    }
  });
  // Both ranks hold the same bits (each summed the same two operands).
  const auto a = replicas[0]->parameters(), b = replicas[1]->parameters();
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k].grad(), b[k].grad()));
}

TEST(Replicas, BroadcastAverageAndCheck) {
  std::vector<torch::nn::Sequential> replicas;
  for (int seed = 0; seed < 2; ++seed) {
    torch::manual_seed(seed);
    replicas.push_back(torch::nn::Sequential(torch::nn::Linear(4, 6), torch::nn::BatchNorm1d(6)));
  }
  on_ranks(2, 10s, [&](ProcessGroup& group) {
    torch::nn::Sequential& model = replicas[static_cast<size_t>(group.rank())];
    broadcast_from_rank0(*model, group);
    EXPECT_EQ(check_replicas(*model, group), 2 + 2 + 3);  // weights, biases, BN's 3 buffers
    torch::NoGradGuard no_grad;
    // Batch-norm running statistics averaged: rank r's mean r, variance 1 + 2r.
    for (auto& buffer : model->named_buffers()) {
      if (buffer.key().find("running_mean") != std::string::npos)
        buffer.value().fill_(group.rank());
      if (buffer.key().find("running_var") != std::string::npos) {
        buffer.value().fill_(1 + 2 * group.rank());
      }
    }
    average_buffers(*model, group);
    for (auto& buffer : model->named_buffers()) {
      if (buffer.key().find("running_mean") != std::string::npos) {
        EXPECT_TRUE(torch::equal(buffer.value(), torch::full({6}, 0.5f)));
      }
      if (buffer.key().find("running_var") != std::string::npos) {
        EXPECT_TRUE(torch::equal(buffer.value(), torch::full({6}, 2.0f)));
      }
    }
    EXPECT_EQ(check_replicas(*model, group), 7);
    // One bit of one weight on rank 1: both ranks refuse, naming it.
    if (group.rank() == 1) {
      float* w = model->named_parameters()["1.weight"].data_ptr<float>();
      w[2] = std::nextafter(w[2], 2.0f);
    }
    EXPECT_ERROR_CONTAINS(check_replicas(*model, group), "1.weight is not the same on all 2 ranks");
  });
}

TEST(ProcessGroup, ALostRankIsNamedWithinTheTimeout) {
  const auto timeout = 3s;
  on_ranks(2, timeout, [&](ProcessGroup& group) {
    group.barrier("start");
    if (group.rank() == 1) return;  // rank 1's group closes: its sockets and heartbeat end
    std::this_thread::sleep_for(200ms);
    const auto start = std::chrono::steady_clock::now();
    torch::Tensor tensor = torch::ones({1000});
    EXPECT_ERROR_CONTAINS(group.allreduce(tensor, Reduction::sum, "the test's all-reduce"),
                          "rank 0: the test's all-reduce failed: lost rank 1");
    EXPECT_LT(std::chrono::steady_clock::now() - start, timeout + 5s);
  });
}

TEST(ProcessGroup, AHangingRankTimesOut) {
  // 3 s, as for the lost rank: the timeout also bounds the rendezvous, which 1 s did not always
  // cover while other tests loaded both cores (a fresh-clone CI run, 2026-12-01).
  const auto timeout = 3s;
  std::atomic<bool> reported{false};
  on_ranks(2, timeout, [&](ProcessGroup& group) {
    group.barrier("start");
    if (group.rank() == 1) {
      // Alive (its heartbeat goes on) but never joins the all-reduce.
      while (!reported.load()) std::this_thread::sleep_for(10ms);
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    torch::Tensor tensor = torch::ones({10});
    EXPECT_ERROR_CONTAINS(group.allreduce(tensor, Reduction::sum, "the test's all-reduce"),
                          "no rank is known to be lost (one may hang");
    EXPECT_LT(std::chrono::steady_clock::now() - start, timeout + 5s);
    reported.store(true);
  });
}

TEST(ProcessGroup, ConnectsOverANamedInterface) {
  on_ranks(
      2, 10s,
      [](ProcessGroup& group) {
        torch::Tensor sum = torch::full({3}, static_cast<double>(group.rank() + 1));
        group.allreduce(sum, Reduction::sum, "sum");
        EXPECT_TRUE(torch::equal(sum, torch::full({3}, 3.0)));
      },
      "lo");
}

TEST(ProcessGroup, BackendChoice) {
  const torch::Device cpu("cpu"), cuda("cuda:1");
  for (const bool with_nccl : {false, true}) {
    EXPECT_EQ(choose_backend("auto", cpu, with_nccl), "gloo");
    EXPECT_EQ(choose_backend("gloo", cpu, with_nccl), "gloo");
    EXPECT_ERROR_CONTAINS(choose_backend("mpi", cpu, with_nccl), "unknown value 'mpi'");
    EXPECT_ERROR_CONTAINS(choose_backend("gloo", cuda, with_nccl),
                          "dist-backend gloo here reduces CPU tensors: use device cpu");
  }
  // Debian's CPU LibTorch: today's one-line refusal.
  EXPECT_ERROR_CONTAINS(choose_backend("nccl", cpu, false),
                        "dist-backend nccl (CUDA) is not supported by this build: its LibTorch (");
  EXPECT_ERROR_CONTAINS(choose_backend("auto", cuda, false),
                        "has no ProcessGroupNCCL; train data-parallel on CPU with device cpu and "
                        "dist-backend gloo, or build against pip's CUDA LibTorch");
  // A LibTorch with ProcessGroupNCCL: auto is nccl on CUDA, and nccl needs CUDA tensors.
  EXPECT_EQ(choose_backend("auto", cuda, true), "nccl");
  EXPECT_EQ(choose_backend("nccl", cuda, true), "nccl");
  EXPECT_ERROR_CONTAINS(choose_backend("nccl", cpu, true),
                        "dist-backend nccl reduces CUDA tensors, and device is cpu: use device "
                        "cuda or --gpus (rank r computes on cuda:LOCAL_RANK), or dist-backend gloo "
                        "on the CPU");
  EXPECT_ERROR_CONTAINS(choose_backend("gloo", cuda, true), ", or dist-backend nccl on CUDA");
  // The build's own answer.
  EXPECT_EQ(choose_backend("auto", cpu), "gloo");
  if (nccl_available()) {
    EXPECT_EQ(choose_backend("auto", cuda), "nccl");
  } else {
    EXPECT_ERROR_CONTAINS(choose_backend("auto", cuda), "is not supported by this build");
  }
}

TEST(ProcessGroup, EachBackendOnItsDevice) {
  const Environment env = loopback_rank(0, 2, 1);  // refused before any connection
  EXPECT_ERROR_CONTAINS(ProcessGroup(env, 1s, "gloo", "", torch::Device("cuda:0")),
                        "the gloo process group reduces CPU tensors, not cuda:0");
  EXPECT_ERROR_CONTAINS(ProcessGroup(env, 1s, "mpi"), "process group backend 'mpi'");
  if (!nccl_available()) {
    EXPECT_ERROR_CONTAINS(ProcessGroup(env, 1s, "nccl", "", torch::Device("cuda:0")),
                          "this build's LibTorch (");
    return;
  }
  EXPECT_ERROR_CONTAINS(ProcessGroup(env, 1s, "nccl", "", torch::Device("cpu")),
                        "the nccl process group computes on one GPU (cuda:N), not cpu");
  if (torch::cuda::device_count() == 0) {
    EXPECT_ERROR_CONTAINS(ProcessGroup(env, 1s, "nccl", "", torch::Device("cuda:0")),
                          "rank 0 computes on cuda:0 (LOCAL_RANK 0), but 0 CUDA devices are "
                          "visible: start fewer ranks on this machine, or choose GPUs with --gpus");
  }
}

TEST(GradientBuckets, HoldParametersOnTheGroupsDevice) {
  on_ranks(1, 10s, [](ProcessGroup& group) {
    const std::shared_ptr<ProcessGroup> shared(&group, [](ProcessGroup*) {});
    EXPECT_EQ(group.device(), torch::Device("cpu"));
    const torch::Tensor elsewhere = torch::zeros({3}, torch::Device("meta")).requires_grad_();
    EXPECT_ERROR_CONTAINS(GradientBuckets({torch::zeros({2}).requires_grad_(), elsewhere}, shared),
                          "gradient buckets hold float32 parameters on the process group's device "
                          "(cpu), parameter 1 is Float on meta");
  });
}

// NCCL's watchdog ends a rank from its own thread by rethrowing the collective's failure
// (std::terminate), where no caller can catch it: the rank still says in one line which rank was
// lost, as a failed collective does, and exits with status 1. Here rank 1's group is gone (its
// heartbeat stopped) and a thread of rank 0 ends as the watchdog does.
void end_as_the_watchdog_does() {
  const int64_t port = free_port();
  std::unique_ptr<ProcessGroup> rank0;
  std::thread other([&] {
    ProcessGroup rank1(loopback_rank(1, 2, port), 5s);
    rank1.barrier("start");
  });
  rank0 = std::make_unique<ProcessGroup>(loopback_rank(0, 2, port), 5s);
  rank0->barrier("start");
  other.join();
  ProcessGroup::on_fatal_error([](const std::string& message) {
    std::fprintf(stderr, "densenet train: error: %s\n", message.c_str());
  });
  std::thread watchdog([] {
    TORCH_CHECK(false,
                "[PG ID 0 Rank 0] Watchdog caught collective operation timeout: "
                "WorkNCCL(SeqNum=7, OpType=ALLREDUCE) ran for 5000 milliseconds\nsecond line");
  });
  watchdog.join();
}

TEST(ProcessGroupDeathTest, AFatalErrorFromAnotherThreadNamesTheLostRank) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(end_as_the_watchdog_does(), testing::ExitedWithCode(1),
              "^densenet train: error: rank 0: a collective failed: lost rank 1 \\(dist-timeout "
              "5 s\\): \\[PG ID 0 Rank 0\\] Watchdog caught collective operation timeout: "
              "WorkNCCL\\(SeqNum=7, OpType=ALLREDUCE\\) ran for 5000 milliseconds\n$");
}

}  // namespace
}  // namespace densenet::distributed
