// sync-bn: replicas that each see part of a batch, with their batch norms synchronised,
// compute what one model computes on the whole batch. Two replicas run in two threads and sum
// their statistics through an in-memory all-reduce; the reference is the same model, without
// sync-bn, on the concatenated batch. In float64, every memory mode, both stems and both layer
// kinds, uneven shares (2 and 3 samples) so that counts are weighed correctly.
#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace densenet {
namespace {

/// Sums tensors over `world` threads, in rank order (deterministic), like c10d's all-reduce.
class ThreadAllReduce {
 public:
  explicit ThreadAllReduce(int world) : parts_(static_cast<size_t>(world)) {}

  void operator()(int rank, torch::Tensor& tensor) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    parts_[static_cast<size_t>(rank)] = tensor.clone();
    if (++arrived_ == static_cast<int>(parts_.size())) {
      torch::Tensor sum = parts_[0].clone();
      for (size_t r = 1; r < parts_.size(); ++r) sum.add_(parts_[r]);
      result_ = sum;
      arrived_ = 0;
      ++generation_;
      ++calls_;
      done_.notify_all();
    } else if (!done_.wait_for(lock, std::chrono::seconds(60),
                               [&] { return generation_ != generation; })) {
      throw std::runtime_error("ThreadAllReduce: the other replica did not arrive in 60 s");
    }
    tensor.copy_(result_);
  }

  int64_t calls() const { return calls_; }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<torch::Tensor> parts_;
  torch::Tensor result_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  int64_t calls_ = 0;
};

struct Result {
  torch::Tensor input_grad;
  StateDict grads;
  StateDict state;
};

/// One training step's forward and backward of `model` on `x` with loss sum(logits * w).
Result step(DenseNet& model, const torch::Tensor& x, const torch::Tensor& w) {
  model->train();
  model->zero_grad();
  torch::Tensor input = x.clone().requires_grad_(true);
  (model->forward(input) * w).sum().backward();
  Result r;
  r.input_grad = input.grad();
  for (const auto& p : model->named_parameters()) r.grads.insert(p.key(), p.value().grad().clone());
  r.state = state_dict(*model);
  return r;
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

struct SyncCase {
  std::string name;
  DenseNetOptions options;
  int64_t size;
};

void PrintTo(const SyncCase& c, std::ostream* os) {
  *os << c.name;
}

class SyncBatchNormTest : public ::testing::TestWithParam<std::tuple<SyncCase, MemoryMode>> {};

TEST_P(SyncBatchNormTest, ReplicasEqualOneModelOnTheWholeBatch) {
  const auto& [c, mode] = GetParam();
  torch::manual_seed(7);
  DenseNetOptions options = c.options;
  options.memory(mode);
  DenseNet reference(options);
  reference->to(torch::kDouble);
  const StateDict initial = state_dict(*reference);
  std::vector<DenseNet> replicas;
  for (int r = 0; r < 2; ++r) {
    replicas.emplace_back(options);
    replicas.back()->to(torch::kDouble);
    load_state_dict(*replicas.back(), initial);
  }
  const std::vector<int64_t> shares = {2, 3};
  const torch::Tensor x = torch::randn({5, options.in_channels(), c.size, c.size}, torch::kDouble);
  const torch::Tensor w = torch::randn({5, options.num_classes()}, torch::kDouble);

  ThreadAllReduce all_reduce(2);
  for (int r = 0; r < 2; ++r) {
    replicas[static_cast<size_t>(r)]->sync_batch_norm(
        [&all_reduce, r](torch::Tensor& sums) { all_reduce(r, sums); });
  }
  std::vector<Result> results(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        const int64_t first = r == 0 ? 0 : shares[0];
        const int64_t n = shares[static_cast<size_t>(r)];
        results[static_cast<size_t>(r)] =
            step(replicas[static_cast<size_t>(r)], x.narrow(0, first, n), w.narrow(0, first, n));
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_GT(all_reduce.calls(), 0);
  const Result whole = step(reference, x, w);

  constexpr double kTolerance = 1e-10;  // float64, summation order only
  EXPECT_LT(max_abs(torch::cat({results[0].input_grad, results[1].input_grad}), whole.input_grad),
            kTolerance);
  for (const auto& item : whole.grads) {
    // Each replica's parameter gradients are its own share; data parallelism sums (averages) them.
    const torch::Tensor summed = results[0].grads[item.key()] + results[1].grads[item.key()];
    EXPECT_LT(max_abs(summed, item.value()), kTolerance) << item.key();
  }
  for (const auto& item : whole.state) {
    for (int r = 0; r < 2; ++r) {
      EXPECT_LT(max_abs(results[static_cast<size_t>(r)].state[item.key()], item.value()),
                kTolerance)
          << item.key() << " (replica " << r << ")";
    }
  }

  // Without sync-bn the replicas' statistics are their own, and the result differs.
  for (auto& replica : replicas) replica->sync_batch_norm(nullptr);
  load_state_dict(*replicas[0], initial);
  const Result alone = step(replicas[0], x.narrow(0, 0, shares[0]), w.narrow(0, 0, shares[0]));
  EXPECT_GT(max_abs(alone.input_grad, whole.input_grad.narrow(0, 0, shares[0])), 1e-6);
}

std::vector<SyncCase> sync_cases() {
  return {
      {"plain",
       DenseNetOptions()
           .growth_rate(3)
           .block_config({2, 2})
           .num_init_features(4)
           .bn_size(0)
           .compression(1.0)
           .num_classes(3)
           .input_size(8),
       8},
      {"bc",
       DenseNetOptions()
           .growth_rate(3)
           .block_config({2, 2})
           .num_init_features(5)
           .bn_size(2)
           .compression(0.5)
           .num_classes(3)
           .input_size(8),
       8},
      {"imagenet_stem",
       DenseNetOptions()
           .growth_rate(3)
           .block_config({2, 2})
           .num_init_features(6)
           .bn_size(2)
           .compression(0.5)
           .num_classes(4)
           .input_size(40),
       40},
  };
}

INSTANTIATE_TEST_SUITE_P(Families, SyncBatchNormTest,
                         ::testing::Combine(::testing::ValuesIn(sync_cases()),
                                            ::testing::Values(MemoryMode::kNaive,
                                                              MemoryMode::kEfficient,
                                                              MemoryMode::kMinimal)),
                         [](const auto& info) {
                           return std::get<0>(info.param).name + "_" +
                                  memory_mode_name(std::get<1>(info.param));
                         });

TEST(SyncBatchNorm, EvaluationIsNotSynchronised) {
  DenseNet model(DenseNetOptions()
                     .growth_rate(3)
                     .block_config({2})
                     .num_init_features(4)
                     .num_classes(2)
                     .input_size(8));
  int64_t calls = 0;
  model->sync_batch_norm([&calls](torch::Tensor&) { ++calls; });
  model->eval();
  torch::NoGradGuard no_grad;
  model->forward(torch::randn({2, 3, 8, 8}));
  EXPECT_EQ(calls, 0);
  model->train();
  model->forward(torch::randn({2, 3, 8, 8}));
  EXPECT_GT(calls, 0);
}

}  // namespace
}  // namespace densenet
