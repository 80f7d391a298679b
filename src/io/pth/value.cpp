#include "densenet/io/pth_value.h"

#include <c10/util/Exception.h>

namespace densenet::pth {

namespace {

std::shared_ptr<Value::Node> make_node(Value::Kind kind) {
  auto node = std::make_shared<Value::Node>();
  node->kind = kind;
  return node;
}

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::None:
      return "None";
    case Value::Kind::Bool:
      return "bool";
    case Value::Kind::Int:
      return "int";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "str";
    case Value::Kind::Bytes:
      return "bytes";
    case Value::Kind::Tuple:
      return "tuple";
    case Value::Kind::List:
      return "list";
    case Value::Kind::Set:
      return "set";
    case Value::Kind::Dict:
      return "dict";
    case Value::Kind::Tensor:
      return "Tensor";
    case Value::Kind::Storage:
      return "Storage";
    case Value::Kind::Global:
      return "global";
    case Value::Kind::Opaque:
      return "object";
  }
  return "?";
}

}  // namespace

Value::Value() = default;

Value Value::boolean(bool value) {
  auto node = make_node(Kind::Bool);
  node->flag = value;
  return Value(std::move(node));
}

Value Value::integer(int64_t value) {
  auto node = make_node(Kind::Int);
  node->integer = value;
  return Value(std::move(node));
}

Value Value::real(double value) {
  auto node = make_node(Kind::Float);
  node->real = value;
  return Value(std::move(node));
}

Value Value::string(std::string value) {
  auto node = make_node(Kind::String);
  node->text = std::move(value);
  return Value(std::move(node));
}

Value Value::bytes(std::string value) {
  auto node = make_node(Kind::Bytes);
  node->text = std::move(value);
  return Value(std::move(node));
}

Value Value::tuple(std::vector<Value> elements) {
  auto node = make_node(Kind::Tuple);
  node->elements = std::move(elements);
  return Value(std::move(node));
}

Value Value::list(std::vector<Value> elements) {
  auto node = make_node(Kind::List);
  node->elements = std::move(elements);
  return Value(std::move(node));
}

Value Value::set(std::vector<Value> elements) {
  auto node = make_node(Kind::Set);
  node->elements = std::move(elements);
  return Value(std::move(node));
}

Value Value::dict(Items items, bool ordered) {
  auto node = make_node(Kind::Dict);
  node->flag = ordered;
  node->attributes = std::make_unique<Value>();
  Value result(std::move(node));
  for (auto& item : items) result.set_item(std::move(item.first), std::move(item.second));
  return result;
}

Value Value::tensor(torch::Tensor value) {
  TORCH_INTERNAL_ASSERT(value.defined());
  auto node = make_node(Kind::Tensor);
  node->tensor = std::move(value);
  return Value(std::move(node));
}

Value Value::big_integer(std::string little_endian_bytes) {
  auto node = make_node(Kind::Int);
  node->flag = true;
  node->text = std::move(little_endian_bytes);
  return Value(std::move(node));
}

Value Value::storage(torch::Tensor flat) {
  auto node = make_node(Kind::Storage);
  node->tensor = std::move(flat);
  return Value(std::move(node));
}

Value Value::global(std::string dotted_name) {
  auto node = make_node(Kind::Global);
  node->text = std::move(dotted_name);
  return Value(std::move(node));
}

Value Value::opaque(std::string dotted_name) {
  auto node = make_node(Kind::Opaque);
  node->text = std::move(dotted_name);
  return Value(std::move(node));
}

Value::Kind Value::kind() const {
  return node_ ? node_->kind : Kind::None;
}

std::string Value::type_name() const {
  if (is_ordered_dict()) return "OrderedDict";
  if (is(Kind::Opaque)) return node_->text;
  return kind_name(kind());
}

bool Value::as_bool() const {
  TORCH_CHECK(is(Kind::Bool), "expected a bool, got ", type_name());
  return node_->flag;
}

int64_t Value::as_int() const {
  TORCH_CHECK(is(Kind::Int), "expected an int, got ", type_name());
  TORCH_CHECK(!node_->flag, "integer does not fit in 64 bits");
  return node_->integer;
}

bool Value::is_big_integer() const {
  return is(Kind::Int) && node_->flag;
}

const std::string& Value::big_integer_bytes() const {
  TORCH_INTERNAL_ASSERT(is_big_integer());
  return node_->text;
}

const std::string& Value::global_name() const {
  TORCH_INTERNAL_ASSERT(is(Kind::Global) || is(Kind::Opaque));
  return node_->text;
}

const torch::Tensor& Value::storage_tensor() const {
  TORCH_INTERNAL_ASSERT(is(Kind::Storage));
  return node_->tensor;
}

double Value::as_float() const {
  if (is(Kind::Int)) return static_cast<double>(as_int());
  TORCH_CHECK(is(Kind::Float), "expected a float, got ", type_name());
  return node_->real;
}

const std::string& Value::as_string() const {
  TORCH_CHECK(is(Kind::String) || is(Kind::Bytes), "expected a str, got ", type_name());
  return node_->text;
}

const torch::Tensor& Value::as_tensor() const {
  TORCH_CHECK(is(Kind::Tensor), "expected a tensor, got ", type_name());
  return node_->tensor;
}

std::vector<Value>& Value::elements() const {
  TORCH_CHECK(is(Kind::Tuple) || is(Kind::List) || is(Kind::Set),
              "expected a tuple, list or set, got ", type_name());
  return node_->elements;
}

const Value::Items& Value::items() const {
  TORCH_CHECK(is(Kind::Dict), "expected a dict, got ", type_name());
  return node_->items;
}

bool Value::is_ordered_dict() const {
  return is(Kind::Dict) && node_->flag;
}

Value& Value::attributes() const {
  TORCH_CHECK(is(Kind::Dict), "expected a dict, got ", type_name());
  return *node_->attributes;
}

const Value* Value::find(const std::string& key) const {
  if (!is(Kind::Dict)) return nullptr;
  for (const auto& item : node_->items) {
    if (item.first.is(Kind::String) && item.first.as_string() == key) return &item.second;
  }
  return nullptr;
}

namespace {

// The key under which a dict indexes `key`, or "" for keys it does not index.
std::string index_key(const Value& key) {
  if (key.is(Value::Kind::String)) return "s" + key.as_string();
  if (key.is(Value::Kind::Int) && !key.is_big_integer()) return "i" + std::to_string(key.as_int());
  return "";
}

}  // namespace

void Value::set_item(Value key, Value value) const {
  TORCH_CHECK(is(Kind::Dict), "cannot set an item on a ", type_name());
  const std::string indexed = index_key(key);
  if (!indexed.empty()) {
    const auto found = node_->key_index.find(indexed);
    if (found != node_->key_index.end()) {
      node_->items[found->second].second = std::move(value);
      return;
    }
    node_->key_index.emplace(indexed, node_->items.size());
  }
  node_->items.emplace_back(std::move(key), std::move(value));
}

void Value::release_contents() const {
  if (!node_) return;
  // Moved out first so that the elements die after this node is consistent again.
  std::vector<Value> elements = std::move(node_->elements);
  Items items = std::move(node_->items);
  node_->elements.clear();
  node_->items.clear();
  node_->key_index.clear();
  if (node_->attributes) *node_->attributes = Value();
}

Value::Node::~Node() {
  thread_local std::vector<std::shared_ptr<Node>>* pending = nullptr;
  std::vector<std::shared_ptr<Node>> worklist;
  const bool outermost = pending == nullptr;
  if (outermost) pending = &worklist;
  auto detach = [](Value& value) {
    if (value.node_) pending->push_back(std::move(value.node_));
  };
  for (auto& element : elements) detach(element);
  for (auto& item : items) {
    detach(item.first);
    detach(item.second);
  }
  if (attributes) detach(*attributes);
  if (!outermost) return;
  // Children dropped here may push their own children; the loop runs until all are gone.
  while (!worklist.empty()) {
    std::shared_ptr<Node> node = std::move(worklist.back());
    worklist.pop_back();
    node.reset();
  }
  pending = nullptr;
}

}  // namespace densenet::pth
