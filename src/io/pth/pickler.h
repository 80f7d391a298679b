#pragma once

#include "densenet/io/pth_value.h"

#include <c10/core/Storage.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace densenet::pth {

/// Writes a Value as a protocol-2 pickle the way torch.save does: tensors become
/// torch._utils._rebuild_tensor_v2 calls over persistent storage ids ('storage', type, key,
/// 'cpu', numel); each distinct storage gets one key, so tensors sharing a storage still share
/// it when loaded.
class Pickler {
 public:
  struct StorageRecord {
    std::string key;
    c10::Storage storage;  // CPU
  };

  std::string pickle(const Value& root);
  /// The storages the pickle refers to, in key order.
  const std::vector<StorageRecord>& storages() const { return storages_; }

 private:
  void write(const Value& value);
  void write_tensor(const torch::Tensor& tensor);
  void write_global(const char* module, const char* name);
  void write_empty_ordered_dict();                      // collections.OrderedDict()
  void write_list(const std::vector<Value>& elements);  // EMPTY_LIST, then APPENDS of them
  void write_string(const std::string& text);
  void write_int(int64_t value);

  std::string out_;
  std::vector<StorageRecord> storages_;
  std::unordered_map<const void*, std::pair<size_t, torch::Dtype>> storage_keys_;
};

}  // namespace densenet::pth
