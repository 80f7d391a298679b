#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace densenet::pth {

/// One Python object of a PyTorch checkpoint, restricted to what `torch.load(weights_only=True)`
/// accepts: None, bool, int, float, str, bytes, tuple, list, set, dict, OrderedDict and tensors.
/// Containers are shared by reference (as in Python), so a value memoised by the pickle and
/// changed later is seen changed everywhere; copies of a Value are cheap handles.
class Value {
 public:
  // Storage and Global exist only while unpickling (a tensor's storage, a class or function
  // reference); a loaded checkpoint never holds them. Opaque stands for any other Python
  // object (argparse.Namespace, a numpy scalar, ...): its class or function name is kept, its
  // contents are not, and nothing of it is ever run.
  enum class Kind {
    None,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    Tuple,
    List,
    Set,
    Dict,
    Tensor,
    Storage,
    Global,
    Opaque
  };
  using Items = std::vector<std::pair<Value, Value>>;

  Value();  // None
  static Value boolean(bool value);
  static Value integer(int64_t value);
  static Value real(double value);
  static Value string(std::string value);
  static Value bytes(std::string value);
  static Value tuple(std::vector<Value> elements);
  static Value list(std::vector<Value> elements = {});
  static Value set(std::vector<Value> elements = {});
  /// `ordered` marks a collections.OrderedDict (what `state_dict()` returns); a plain dict
  /// keeps insertion order too, as Python's does.
  static Value dict(Items items = {}, bool ordered = false);
  static Value tensor(torch::Tensor value);
  /// An int beyond int64 (the legacy format's magic number), as little-endian two's-complement
  /// bytes exactly as pickled.
  static Value big_integer(std::string little_endian_bytes);
  static Value storage(torch::Tensor flat);      // 1-D tensor over the whole storage
  static Value global(std::string dotted_name);  // "collections.OrderedDict"
  static Value opaque(std::string dotted_name);  // "argparse.Namespace"

  Kind kind() const;
  bool is(Kind kind) const { return this->kind() == kind; }
  bool is_none() const { return is(Kind::None); }
  /// Python's name of the kind ("int", "OrderedDict", "Tensor", ...; an Opaque value's class
  /// or function name), for error messages.
  std::string type_name() const;

  bool as_bool() const;
  int64_t as_int() const;  // errors for a big integer
  bool is_big_integer() const;
  const std::string& big_integer_bytes() const;
  const std::string& global_name() const;  // Global or Opaque
  const torch::Tensor& storage_tensor() const;
  double as_float() const;               // int or float
  const std::string& as_string() const;  // str or bytes
  const torch::Tensor& as_tensor() const;
  /// Elements of a tuple, list or set; mutable so that the unpickler can append.
  std::vector<Value>& elements() const;
  /// Items of a dict, in insertion order.
  const Items& items() const;  // change through set_item, which keeps the key index
  bool is_ordered_dict() const;
  /// Attributes set on a dict by the pickle's BUILD (state_dict()'s `_metadata`): a dict, or
  /// None. Kept so that a loaded checkpoint written back is what was read.
  Value& attributes() const;

  /// The value under string key `key` in a dict, or nullptr.
  const Value* find(const std::string& key) const;
  /// dict[key] = value with Python's semantics (an existing str or int key is replaced).
  void set_item(Value key, Value value) const;

  /// Empties a container, breaking any reference cycle through it.
  void release_contents() const;

  /// Identity of the shared container (nullptr for scalars), for cycle detection.
  const void* identity() const { return node_.get(); }

  struct Node;

 private:
  explicit Value(std::shared_ptr<Node> node) : node_(std::move(node)) {}
  std::shared_ptr<Node> node_;
};

struct Value::Node {
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Destroys nested containers iteratively: a pickle can nest a million deep, and a recursive
  // destruction would overflow the stack.
  ~Node();

  Kind kind = Kind::None;
  bool flag = false;  // Bool value; OrderedDict for Dict; big for Int
  int64_t integer = 0;
  double real = 0.0;
  std::string text;  // String, Bytes, Global name, big Int bytes
  std::vector<Value> elements;
  Items items;
  std::unique_ptr<Value> attributes;
  torch::Tensor tensor;  // Tensor, Storage
  // Dict: index of str/int keys into `items`, so that setting an existing key replaces it in
  // O(1) as Python does (a linear search would let a crafted pickle run for hours).
  std::unordered_map<std::string, size_t> key_index;
};

}  // namespace densenet::pth
