#include "densenet/data/loader.h"

#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>

namespace densenet::data {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// One warning per unreadable file per process, however many epochs meet it.
void warn_once(const DataError& error) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(error.path()).second) {
    std::fprintf(stderr, "densenet: warning: skipping an image: %s\n", error.what());
  }
}

void add_stages(LoaderStats& into, const LoaderStats& from) {
  into.images += from.images;
  into.skipped += from.skipped;
  into.read_seconds += from.read_seconds;
  into.decode_seconds += from.decode_seconds;
  into.augment_seconds += from.augment_seconds;
  into.collate_seconds += from.collate_seconds;
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset,
                       std::shared_ptr<const Transform> transform, LoaderOptions options)
    : dataset_(std::move(dataset)), transform_(std::move(transform)), options_(options) {
  TORCH_CHECK(dataset_ != nullptr && transform_ != nullptr,
              "a loader needs a dataset and a transform");
  TORCH_CHECK(options_.batch_size >= 1, "batch size must be >= 1, got ", options_.batch_size);
  TORCH_CHECK(options_.workers >= 0 && options_.workers <= 256, "workers must be in [0, 256], got ",
              options_.workers);
  TORCH_CHECK(options_.prefetch_batches >= 1, "prefetch must be >= 1 batch, got ",
              options_.prefetch_batches);
  TORCH_CHECK(options_.world_size >= 1 && options_.rank >= 0 && options_.rank < options_.world_size,
              "rank must be in [0, world_size), got rank ", options_.rank, " of ",
              options_.world_size);
  TORCH_CHECK(dataset_->size() >= 1, "the dataset is empty: ", dataset_->describe());
  start_epoch(0);
}

DataLoader::~DataLoader() {
  stop_workers();
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  stop_ = false;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_->size();
  // Padded to a multiple of world_size (DistributedSampler), then global batches of B * W.
  const int64_t padded = (n + options_.world_size - 1) / options_.world_size * options_.world_size;
  const int64_t global = options_.batch_size * options_.world_size;
  return options_.drop_last ? padded / global : (padded + global - 1) / global;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  const int64_t batches = batches_per_epoch();
  TORCH_CHECK(epoch >= 0, "epoch must be >= 0, got ", epoch);
  TORCH_CHECK(first_batch >= 0 && first_batch <= batches, "cannot start epoch ", epoch,
              " at batch ", first_batch, ": it has ", batches, " batches");
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (options_.shuffle) {
    order = permutation(n, options_.seed, epoch);
  } else {
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  for (int64_t i = 0; static_cast<int64_t>(order.size()) % options_.world_size != 0; ++i) {
    order.push_back(order[static_cast<size_t>(i)]);
  }
  order_ = std::move(order);
  epoch_ = epoch;
  next_batch_ = first_batch;
  claim_ = first_batch;
  done_.clear();
  stats_ = {};
  for (int64_t i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void DataLoader::worker_loop() {
  const int64_t batches = batches_per_epoch();
  while (true) {
    int64_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] {
        return stop_ || claim_ >= batches || claim_ < next_batch_ + options_.prefetch_batches;
      });
      if (stop_ || claim_ >= batches) return;
      index = claim_++;
    }
    Slot slot;
    try {
      slot = build(index);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_[index] = std::move(slot);
    }
    ready_.notify_all();
  }
}

DataLoader::Slot DataLoader::build(int64_t batch_index) const {
  Slot slot;
  const int64_t global = options_.batch_size * options_.world_size;
  const auto total = static_cast<int64_t>(order_.size());
  const int64_t begin = std::min(total, batch_index * global + options_.rank * options_.batch_size);
  const int64_t end = std::min(total, begin + options_.batch_size);
  torch::Tensor images;  // (end - begin, C, H, W) float32, allocated at the first sample
  std::vector<int64_t> labels;
  int64_t filled = 0;
  for (int64_t position = begin; position < end; ++position) {
    const int64_t sample = order_[static_cast<size_t>(position)];
    ReadTimes times;
    Rng rng = Rng::for_sample(options_.seed, epoch_, sample);
    torch::Tensor x;  // (C, H, W) float32
    int64_t label = 0;
    double transform_seconds = 0.0;
    double decode_before = 0.0;  // times.decode before the transform ran
    try {
      // Image folders hand over the file, so that the transform can decode only what it keeps.
      std::optional<EncodedSample> file = dataset_->encoded(sample, times);
      if (file) {
        decode_before = times.decode;
        const auto start = Clock::now();
        x = transform_->apply_encoded(*file, rng, times);
        transform_seconds = seconds_since(start);
        label = file->label;
      } else {
        const RawSample raw = dataset_->get_timed(sample, times);
        decode_before = times.decode;
        const auto start = Clock::now();
        x = transform_->apply(raw.image, rng);
        transform_seconds = seconds_since(start);
        label = raw.label;
      }
    } catch (const DataError& error) {
      warn_once(error);
      ++slot.stats.skipped;
      continue;
    }
    slot.stats.read_seconds += times.read;
    slot.stats.decode_seconds += times.decode;
    // apply_encoded's decoding is counted as decode, the rest as augmentation.
    slot.stats.augment_seconds += std::max(0.0, transform_seconds - (times.decode - decode_before));
    auto start = Clock::now();
    if (!images.defined()) {
      std::vector<int64_t> shape = {end - begin};
      for (const int64_t size : x.sizes()) shape.push_back(size);
      images = batch_buffer(shape);
    }
    TORCH_CHECK(x.sizes() == images.sizes().slice(1) && x.scalar_type() == torch::kFloat32 &&
                    x.is_contiguous(),
                "the transform made a ", x.sizes(), " ", x.scalar_type(), " tensor for sample ",
                sample, " but the batch holds ", images.sizes().slice(1), " float32 images");
    std::memcpy(images.data_ptr<float>() + filled * x.numel(), x.data_ptr<float>(),
                static_cast<size_t>(x.numel()) * sizeof(float));
    labels.push_back(label);
    ++filled;
    slot.stats.collate_seconds += seconds_since(start);
  }
  slot.stats.images = filled;
  if (filled == 0) return slot;  // every sample skipped
  Batch batch;
  batch.images = filled == end - begin ? images : images.narrow(0, 0, filled);
  batch.labels = torch::tensor(labels, torch::kInt64);
  batch.index = batch_index;
  slot.batch = std::move(batch);
  return slot;
}

torch::Tensor DataLoader::batch_buffer(const std::vector<int64_t>& shape) const {
  if (options_.pin_memory && torch::cuda::is_available()) {
    // Not pooled: a buffer the consumer dropped may still be the source of an asynchronous
    // copy to the GPU; the caching host allocator knows when it is free, we do not.
    return torch::empty(shape, torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(true));
  }
  // A fresh (N, 3, 224, 224) batch is 38 MB that the kernel maps and zeroes page by page on
  // first touch (about 1 ms per image measured); reusing buffers that nobody references any
  // more skips that.
  std::lock_guard<std::mutex> lock(pool_mutex_);
  for (const torch::Tensor& buffer : pool_) {
    if (buffer.sizes() == c10::IntArrayRef(shape) && buffer.use_count() == 1 &&
        buffer.storage().use_count() == 1) {
      return buffer;
    }
  }
  torch::Tensor buffer = torch::empty(shape, torch::kFloat32);
  const auto capacity = static_cast<size_t>(options_.prefetch_batches + options_.workers + 2);
  if (pool_.size() < capacity) {
    pool_.push_back(buffer);
  } else {
    // Replace a buffer that is free but of another shape (a last, shorter batch), if any.
    for (torch::Tensor& old : pool_) {
      if (old.use_count() == 1 && old.storage().use_count() == 1) {
        old = buffer;
        break;
      }
    }
  }
  return buffer;
}

std::optional<Batch> DataLoader::next() {
  const int64_t batches = batches_per_epoch();
  while (next_batch_ < batches) {
    const auto start = Clock::now();
    Slot slot;
    if (options_.workers == 0) {
      try {
        slot = build(next_batch_);
      } catch (...) {
        slot.error = std::current_exception();
      }
    } else {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [&] { return done_.count(next_batch_) > 0; });
      auto found = done_.find(next_batch_);
      slot = std::move(found->second);
      done_.erase(found);
    }
    ++next_batch_;
    space_.notify_all();
    stats_.wait_seconds += seconds_since(start);
    add_stages(stats_, slot.stats);
    if (slot.error) {
      try {
        std::rethrow_exception(slot.error);
      } catch (const c10::Error&) {
        throw;
      } catch (const std::exception& error) {
        TORCH_CHECK(false, "data loader: batch ", next_batch_ - 1, " of epoch ", epoch_,
                    " failed: ", error.what());
      }
    }
    if (slot.batch) return std::move(slot.batch);
    if (options_.keep_empty_batches) {
      Batch empty;
      empty.images = torch::empty({0}, torch::kFloat32);
      empty.labels = torch::empty({0}, torch::kInt64);
      empty.index = next_batch_ - 1;
      return empty;
    }
  }
  return std::nullopt;
}

LoaderPosition DataLoader::position() const {
  return {epoch_, next_batch_};
}

LoaderStats DataLoader::epoch_stats() const {
  return stats_;
}

}  // namespace densenet::data
