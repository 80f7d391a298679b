#pragma once

#include "densenet/io/pth_value.h"

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace densenet::pth {

/// Returns the storage called `key` as a 1-D tensor of `numel` elements of `dtype`; called
/// once per persistent id in the pickle (implementations cache by key).
using StorageLoader =
    std::function<torch::Tensor(const std::string& key, torch::Dtype dtype, int64_t numel)>;

/// A pickle virtual machine with the semantics of `torch.load(weights_only=True)`: it builds
/// only None, bools, ints, floats, strings, bytes, tuples, lists, sets, dicts, OrderedDicts and
/// tensors, and it calls no Python function. Globals of modules that run code or reach the
/// system (os, subprocess, builtins.eval, ...) are refused with an error naming them, before
/// anything else happens; other globals (argparse.Namespace, numpy scalars, which training
/// scripts save beside the weights) become Opaque values that keep only their name, with one
/// warning on stderr per pickle. Every read is bounds-checked, nesting is
/// limited, and reference cycles are rejected, so a hostile file yields a c10::Error.
class Unpickler {
 public:
  Unpickler(std::string_view bytes, std::string source, StorageLoader load_storage = nullptr);
  ~Unpickler();

  /// Reads one pickle from the current position (a legacy checkpoint is several in a row).
  Value load();
  /// Bytes consumed so far.
  size_t position() const { return position_; }

 private:
  uint8_t read_byte();
  std::string_view read_bytes(uint64_t count);
  std::string_view read_line();
  uint64_t read_uint(int width);

  void push(Value value);
  Value pop();
  Value& top();
  std::vector<Value> pop_mark();
  void remember(uint64_t index, const Value& value);
  Value recall(uint64_t index);

  Value global(const std::string& module, const std::string& name);
  Value call(const Value& callable, const Value& args);
  Value persistent_load(const Value& id);
  Value rebuild_tensor(const std::vector<Value>& args, size_t count, const char* function);
  void build(const Value& state);
  /// One warning on stderr naming the opaque objects of the pickle just loaded, if any.
  void warn_about_opaque_values();
  /// Rejects reference cycles, excessive nesting and leftover storages or globals.
  void validate(const Value& root) const;
  [[noreturn]] void fail(const std::string& message) const;

  std::string_view bytes_;
  std::string source_;
  StorageLoader load_storage_;
  size_t position_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
  // Every container built, so that cycles a hostile pickle makes can be broken on the way out.
  std::vector<Value> containers_;
  std::set<std::string> opaque_names_;  // the globals kept as opaque values (at most 16 named)
};

}  // namespace densenet::pth
