#include "io/pth/unpickler.h"

#include "io/pth/pickle_opcodes.h"
#include "io/pth/storage_types.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_set>
#include <vector>

namespace densenet::pth {

namespace {

constexpr size_t kMaxNesting = 1000;
constexpr size_t kMaxDimensions = 64;

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms and out-of-range code points; surrogates pass, as with "surrogatepass".
    if ((extra == 1 && code < 0x80) || (extra == 2 && code < 0x800) ||
        (extra == 3 && (code < 0x10000 || code > 0x10FFFF))) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// The globals a weights file may name (torch.load(weights_only=True)'s list, less the sparse
// and meta rebuilders, which no DenseNet checkpoint holds).
bool is_allowed_callable(const std::string& name) {
  static const std::unordered_set<std::string> allowed = {
      "collections.OrderedDict",
      "torch._utils._rebuild_tensor",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
      "torch.nn.parameter.Parameter",
      "torch.Size",
      "_codecs.encode",
      "builtins.set",
      "builtins.frozenset",
  };
  return allowed.count(name) != 0;
}

// A decimal integer as the minimal little-endian two's-complement bytes that LONG1 would hold
// (pickle.encode_long), or nothing when the text is not a decimal integer of at most 1000 digits
// (the bound keeps the quadratic conversion cheap; the legacy magic number has 22).
std::optional<std::string> decimal_to_little_endian(const std::string& text) {
  const bool negative = !text.empty() && text[0] == '-';
  const size_t first = negative || (!text.empty() && text[0] == '+') ? 1 : 0;
  if (text.size() <= first || text.size() - first > 1000) return std::nullopt;
  std::vector<uint8_t> bytes;  // magnitude, little-endian
  for (size_t i = first; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    uint32_t carry = static_cast<uint32_t>(text[i] - '0');
    for (uint8_t& byte : bytes) {
      const uint32_t value = byte * 10u + carry;
      byte = static_cast<uint8_t>(value & 0xFF);
      carry = value >> 8;
    }
    for (; carry > 0; carry >>= 8) bytes.push_back(static_cast<uint8_t>(carry & 0xFF));
  }
  bytes.push_back(0);  // room for the sign bit
  if (negative) {
    uint32_t carry = 1;
    for (uint8_t& byte : bytes) {
      const uint32_t value = static_cast<uint8_t>(~byte) + carry;
      byte = static_cast<uint8_t>(value & 0xFF);
      carry = value >> 8;
    }
  }
  while (bytes.size() > 1 && ((bytes.back() == 0x00 && !(bytes[bytes.size() - 2] & 0x80)) ||
                              (bytes.back() == 0xFF && (bytes[bytes.size() - 2] & 0x80)))) {
    bytes.pop_back();
  }
  return std::string(bytes.begin(), bytes.end());
}

// Modules whose globals run code or reach the system: a pickle that names one is hostile, not a
// training script's extra state, and is refused (the rest become opaque values; neither runs).
bool is_code_global(const std::string& module, const std::string& name) {
  static const std::unordered_set<std::string> modules = {"os",
                                                          "posix",
                                                          "nt",
                                                          "subprocess",
                                                          "sys",
                                                          "shutil",
                                                          "importlib",
                                                          "runpy",
                                                          "socket",
                                                          "pickle",
                                                          "_pickle",
                                                          "marshal",
                                                          "ctypes",
                                                          "code",
                                                          "codeop",
                                                          "pty",
                                                          "commands",
                                                          "webbrowser",
                                                          "multiprocessing",
                                                          "signal",
                                                          "io",
                                                          "pathlib",
                                                          "tempfile",
                                                          "threading",
                                                          "asyncio",
                                                          "types",
                                                          "inspect",
                                                          "operator",
                                                          "functools",
                                                          "torch.hub",
                                                          "torch.jit",
                                                          "torch.serialization",
                                                          "torch.ops",
                                                          "torch._C",
                                                          "torch.utils.cpp_extension"};
  static const std::unordered_set<std::string> builtins = {
      "eval",       "exec",    "compile",     "open",         "__import__", "getattr",
      "setattr",    "delattr", "globals",     "locals",       "vars",       "input",
      "breakpoint", "apply",   "execfile",    "file",         "reload",     "memoryview",
      "type",       "super",   "classmethod", "staticmethod", "property",   "help",
      "exit",       "quit"};
  if (module == "builtins") return builtins.count(name) != 0;
  for (size_t dot = module.size(); dot != std::string::npos && dot > 0;
       dot = module.rfind('.', dot - 1)) {
    if (modules.count(module.substr(0, dot)) != 0) return true;
  }
  return false;
}

bool ends_with_name(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool checked_add(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

// The opcodes a weights file never needs, by name, for the refusal.
const char* refused_opcode_name(PickleOpCode opcode) {
  switch (opcode) {
    case PickleOpCode::INST:
      return "INST";
    case PickleOpCode::OBJ:
      return "OBJ";
    case PickleOpCode::EXT1:
    case PickleOpCode::EXT2:
    case PickleOpCode::EXT4:
      return "EXT";
    case PickleOpCode::NEWOBJ_EX:
      return "NEWOBJ_EX";
    case PickleOpCode::BYTEARRAY8:
      return "BYTEARRAY8";
    case PickleOpCode::NEXT_BUFFER:
      return "NEXT_BUFFER";
    case PickleOpCode::READONLY_BUFFER:
      return "READONLY_BUFFER";
    case PickleOpCode::PERSID:
      return "PERSID";
    case PickleOpCode::STRING:
      return "STRING";
    case PickleOpCode::UNICODE:
      return "UNICODE";
    default:
      return nullptr;
  }
}

}  // namespace

Unpickler::Unpickler(std::string_view bytes, std::string source, StorageLoader load_storage)
    : bytes_(bytes), source_(std::move(source)), load_storage_(std::move(load_storage)) {}

Unpickler::~Unpickler() {
  // Only after a failed load: a hostile pickle may have built reference cycles, and emptying
  // every container it built frees them.
  stack_.clear();
  memo_.clear();
  for (const auto& container : containers_) container.release_contents();
}

void Unpickler::fail(const std::string& message) const {
  TORCH_CHECK(false, "cannot load '", source_, "': ", message, " (at byte ", position_, ")");
}

uint8_t Unpickler::read_byte() {
  if (position_ >= bytes_.size()) fail("the pickle ends unexpectedly; the file is truncated");
  return static_cast<uint8_t>(bytes_[position_++]);
}

std::string_view Unpickler::read_bytes(uint64_t count) {
  if (count > bytes_.size() - position_) {
    fail("the pickle asks for " + std::to_string(count) + " bytes but only " +
         std::to_string(bytes_.size() - position_) + " remain; the file is truncated or corrupted");
  }
  const std::string_view result = bytes_.substr(position_, count);
  position_ += count;
  return result;
}

std::string_view Unpickler::read_line() {
  const size_t end = bytes_.find('\n', position_);
  if (end == std::string_view::npos) fail("the pickle ends inside a text field");
  const std::string_view line = bytes_.substr(position_, end - position_);
  position_ = end + 1;
  return line;
}

uint64_t Unpickler::read_uint(int width) {
  const std::string_view raw = read_bytes(static_cast<uint64_t>(width));
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(raw[i]);
  return value;
}

void Unpickler::push(Value value) {
  if (value.is(Value::Kind::Tuple) || value.is(Value::Kind::List) || value.is(Value::Kind::Set) ||
      value.is(Value::Kind::Dict)) {
    containers_.push_back(value);
  }
  stack_.push_back(std::move(value));
}

Value Unpickler::pop() {
  const size_t floor = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= floor) fail("stack underflow: the pickle is corrupted");
  Value value = std::move(stack_.back());
  stack_.pop_back();
  return value;
}

Value& Unpickler::top() {
  const size_t floor = marks_.empty() ? 0 : marks_.back();
  if (stack_.size() <= floor) fail("stack underflow: the pickle is corrupted");
  return stack_.back();
}

std::vector<Value> Unpickler::pop_mark() {
  if (marks_.empty()) fail("no MARK on the stack: the pickle is corrupted");
  const size_t mark = marks_.back();
  marks_.pop_back();
  std::vector<Value> items(std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(mark)),
                           std::make_move_iterator(stack_.end()));
  stack_.resize(mark);
  return items;
}

void Unpickler::remember(uint64_t index, const Value& value) {
  memo_[index] = value;
}

Value Unpickler::recall(uint64_t index) {
  const auto found = memo_.find(index);
  if (found == memo_.end()) fail("memo entry " + std::to_string(index) + " was never stored");
  return found->second;
}

Value Unpickler::global(const std::string& module, const std::string& name) {
  std::string dotted = (module == "__builtin__" ? std::string("builtins") : module) + "." + name;
  if (is_allowed_callable(dotted) || storage_dtype(dotted).has_value()) {
    return Value::global(std::move(dotted));
  }
  if (!is_code_global(module == "__builtin__" ? "builtins" : module, name)) {
    // Training scripts save argparse.Namespace, numpy scalars and the like beside the weights;
    // torch.load would rebuild them by running their classes. Here they stay names.
    if (opaque_names_.size() < 16) opaque_names_.insert(dotted);
    return Value::opaque(std::move(dotted));
  }
  fail("it refers to the Python global '" + dotted +
       "', which runs code or reaches the system; refusing to load it (torch.load "
       "with weights_only=True refuses it too; nothing runs)");
}

Value Unpickler::persistent_load(const Value& id) {
  if (!id.is(Value::Kind::Tuple) || id.elements().empty() ||
      !(id.elements()[0].is(Value::Kind::String) || id.elements()[0].is(Value::Kind::Bytes)) ||
      id.elements()[0].as_string() != "storage") {
    fail("a persistent id other than ('storage', ...) (" + id.type_name() + ")");
  }
  const auto& fields = id.elements();
  if (fields.size() != 5 && fields.size() != 6) {
    fail("a storage id has " + std::to_string(fields.size()) + " fields, expected 5 or 6");
  }
  if (!fields[1].is(Value::Kind::Global)) fail("a storage id without a storage type");
  const auto dtype = storage_dtype(fields[1].global_name());
  if (!dtype) fail("'" + fields[1].global_name() + "' is not a storage type");
  std::string key;
  if (fields[2].is(Value::Kind::String) || fields[2].is(Value::Kind::Bytes)) {
    key = fields[2].as_string();
  } else if (fields[2].is(Value::Kind::Int) && !fields[2].is_big_integer()) {
    key = std::to_string(fields[2].as_int());
  } else {
    fail("a storage key of type " + fields[2].type_name());
  }
  if (!fields[4].is(Value::Kind::Int) || fields[4].is_big_integer() || fields[4].as_int() < 0) {
    fail("storage '" + key + "' has an invalid element count");
  }
  const int64_t numel = fields[4].as_int();
  if (!load_storage_) fail("a tensor where none may be (a pickle header)");
  torch::Tensor storage = load_storage_(key, *dtype, numel);
  TORCH_INTERNAL_ASSERT(storage.dim() == 1 && storage.numel() == numel);
  if (fields.size() == 6 && !fields[5].is_none()) {
    // Legacy storage views: (view_key, offset, size) in elements of the root storage.
    const Value& view = fields[5];
    if (!view.is(Value::Kind::Tuple) || view.elements().size() != 3 ||
        !view.elements()[1].is(Value::Kind::Int) || !view.elements()[2].is(Value::Kind::Int) ||
        view.elements()[1].is_big_integer() || view.elements()[2].is_big_integer()) {
      fail("storage '" + key + "' has malformed view metadata");
    }
    const int64_t offset = view.elements()[1].as_int();
    const int64_t size = view.elements()[2].as_int();
    if (offset < 0 || size < 0 || offset > numel || size > numel - offset) {
      fail("a view of storage '" + key + "' lies outside it");
    }
    storage = storage.narrow(0, offset, size);
  }
  return Value::storage(std::move(storage));
}

Value Unpickler::rebuild_tensor(const std::vector<Value>& args, size_t count,
                                const char* function) {
  if (args.size() < count) {
    fail(std::string(function) + " takes " + std::to_string(count) + " arguments, got " +
         std::to_string(args.size()));
  }
  if (!args[0].is(Value::Kind::Storage)) fail(std::string(function) + " without a storage");
  const torch::Tensor& storage = args[0].storage_tensor();
  auto read_ints = [&](const Value& value, const char* what) {
    if (!value.is(Value::Kind::Tuple) && !value.is(Value::Kind::List)) {
      fail(std::string("tensor ") + what + " is a " + value.type_name() + ", not a tuple");
    }
    std::vector<int64_t> ints;
    for (const auto& element : value.elements()) {
      if (!element.is(Value::Kind::Int) || element.is_big_integer() || element.as_int() < 0) {
        fail(std::string("tensor ") + what + " holds something other than a non-negative int");
      }
      ints.push_back(element.as_int());
    }
    if (ints.size() > kMaxDimensions) fail("a tensor with more than 64 dimensions");
    return ints;
  };
  if (!args[1].is(Value::Kind::Int) || args[1].is_big_integer() || args[1].as_int() < 0) {
    fail("tensor storage offset is not a non-negative int");
  }
  const int64_t offset = args[1].as_int();
  const std::vector<int64_t> sizes = read_ints(args[2], "size");
  const std::vector<int64_t> strides = read_ints(args[3], "stride");
  if (sizes.size() != strides.size()) fail("tensor size and stride differ in length");
  // The last element the view touches must lie inside the storage.
  bool empty = false;
  int64_t last = offset;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) empty = true;
    int64_t span = 0;
    if (sizes[d] > 0 &&
        (!checked_mul(sizes[d] - 1, strides[d], &span) || !checked_add(last, span, &last))) {
      fail("tensor size and stride overflow");
    }
  }
  int64_t numel = 1;
  for (const int64_t size : sizes) {
    if (!checked_mul(numel, size, &numel)) fail("tensor size overflows");
  }
  if (!empty && last >= storage.numel()) {
    fail("a tensor of size " + c10::str(sizes) + ", stride " + c10::str(strides) + " at offset " +
         std::to_string(offset) + " reaches past its storage of " +
         std::to_string(storage.numel()) + " elements");
  }
  if (empty && offset > storage.numel()) fail("tensor storage offset lies past its storage");
  torch::Tensor tensor = storage.as_strided(sizes, strides, storage.storage_offset() + offset);
  if (count >= 5) {
    if (!args[4].is(Value::Kind::Bool)) fail("tensor requires_grad is not a bool");
    if (args[4].as_bool() && tensor.is_floating_point()) tensor.requires_grad_(true);
  }
  return Value::tensor(tensor);
}

Value Unpickler::call(const Value& callable, const Value& args_value) {
  if (callable.is(Value::Kind::Opaque)) {
    // Protocols 0 and 1 build plain objects as copyreg._reconstructor(cls, object, state):
    // the object is named after cls.
    const std::vector<Value>& args = args_value.elements();
    const bool reconstructor = ends_with_name(callable.global_name(), "._reconstructor");
    if (reconstructor && args_value.is(Value::Kind::Tuple) && !args.empty() &&
        args[0].is(Value::Kind::Opaque)) {
      return Value::opaque(args[0].global_name());
    }
    return Value::opaque(callable.global_name());
  }
  if (!callable.is(Value::Kind::Global)) fail("a call of a " + callable.type_name());
  if (!args_value.is(Value::Kind::Tuple)) fail("call arguments are not a tuple");
  const std::string& name = callable.global_name();
  const std::vector<Value>& args = args_value.elements();
  if (name == "collections.OrderedDict") {
    Value dict = Value::dict({}, /*ordered=*/true);
    if (args.size() > 1) fail("OrderedDict() with more than one argument");
    if (args.size() == 1) {
      if (!args[0].is(Value::Kind::List) && !args[0].is(Value::Kind::Tuple)) {
        fail("OrderedDict() of a " + args[0].type_name());
      }
      for (const auto& pair : args[0].elements()) {
        if ((!pair.is(Value::Kind::Tuple) && !pair.is(Value::Kind::List)) ||
            pair.elements().size() != 2) {
          fail("OrderedDict() of something other than pairs");
        }
        dict.set_item(pair.elements()[0], pair.elements()[1]);
      }
    }
    return dict;
  }
  if (name == "torch._utils._rebuild_tensor") return rebuild_tensor(args, 4, "_rebuild_tensor");
  if (name == "torch._utils._rebuild_tensor_v2") {
    if (args.size() > 7) fail("_rebuild_tensor_v2 with more than 7 arguments");
    return rebuild_tensor(args, 6, "_rebuild_tensor_v2");
  }
  if (name == "torch._utils._rebuild_parameter" ||
      name == "torch._utils._rebuild_parameter_with_state" ||
      name == "torch.nn.parameter.Parameter") {
    if (args.empty() || !args[0].is(Value::Kind::Tensor)) fail(name + " without a tensor");
    bool requires_grad = true;
    if (args.size() >= 2) {
      if (!args[1].is(Value::Kind::Bool)) fail(name + ": requires_grad is not a bool");
      requires_grad = args[1].as_bool();
    }
    torch::Tensor tensor = args[0].as_tensor();
    if (tensor.is_floating_point()) tensor.requires_grad_(requires_grad);
    return Value::tensor(tensor);
  }
  if (name == "torch.Size") {
    if (args.size() != 1 || !args[0].is(Value::Kind::Tuple)) fail("torch.Size of a non-tuple");
    return args[0];
  }
  if (name == "_codecs.encode") {
    // How protocol 2 pickles Python 3 bytes: encode(text, 'latin1').
    if (args.size() != 2 || !args[0].is(Value::Kind::String) || !args[1].is(Value::Kind::String) ||
        (args[1].as_string() != "latin1" && args[1].as_string() != "latin-1")) {
      fail("_codecs.encode with arguments other than (str, 'latin1')");
    }
    std::string out;
    const std::string& text = args[0].as_string();
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size() && c <= 0xC3) {
        out.push_back(static_cast<char>(((c & 0x1F) << 6) | (text[i + 1] & 0x3F)));
        ++i;
      } else {
        fail("_codecs.encode: a character outside latin-1");
      }
    }
    return Value::bytes(std::move(out));
  }
  if (name == "builtins.set" || name == "builtins.frozenset") {
    if (args.empty()) return Value::set();
    if (args.size() != 1 || (!args[0].is(Value::Kind::List) && !args[0].is(Value::Kind::Tuple))) {
      fail(name + " of something other than a list");
    }
    return Value::set(args[0].elements());
  }
  fail("it calls '" + name + "', which cannot be called here");
}

void Unpickler::build(const Value& state) {
  Value& target = top();
  if (target.is(Value::Kind::Opaque)) return;  // an object's __dict__ or __setstate__: skipped
  if (target.is(Value::Kind::Dict)) {
    // OrderedDict.__dict__.update(state): state_dict()'s `_metadata`.
    if (!state.is(Value::Kind::Dict)) fail("BUILD of a dict with a " + state.type_name());
    if (target.attributes().is_none()) {
      target.attributes() = Value::dict();
      containers_.push_back(target.attributes());
    }
    for (const auto& item : state.items()) target.attributes().set_item(item.first, item.second);
    return;
  }
  if (target.is(Value::Kind::Tensor) &&
      (state.is_none() || (state.is(Value::Kind::Dict) && state.items().empty()))) {
    return;
  }
  fail("BUILD of a " + target.type_name() + " with a " + state.type_name() +
       " (only OrderedDict attributes are restored)");
}

void Unpickler::warn_about_opaque_values() {
  // Only for the pickle that holds a checkpoint's object (it has a storage loader), not for the
  // probe that looks for the legacy magic number in any file.
  if (opaque_names_.empty() || !load_storage_) return;
  std::string names;
  for (const auto& name : opaque_names_) names += (names.empty() ? "" : ", ") + name;
  // One line per file, on stderr: the tensors load, and the user learns what was skipped.
  std::fprintf(stderr,
               "warning: '%s' holds Python objects that are not tensors (%s); they are kept as "
               "opaque values, never run\n",
               source_.c_str(), names.c_str());
  opaque_names_.clear();
}

void Unpickler::validate(const Value& root) const {
  // Iterative depth-first walk: grey nodes are on the current path (a cycle returns to one).
  struct Frame {
    Value value;
    size_t next = 0;
  };
  std::unordered_set<const void*> done;
  std::unordered_set<const void*> on_path;
  std::vector<Frame> path;
  auto children_of = [](const Value& value, size_t index, Value* child) {
    if (value.is(Value::Kind::Tuple) || value.is(Value::Kind::List) || value.is(Value::Kind::Set)) {
      if (index >= value.elements().size()) return false;
      *child = value.elements()[index];
      return true;
    }
    if (value.is(Value::Kind::Dict)) {
      const size_t count = value.items().size() * 2;
      if (index < count) {
        const auto& item = value.items()[index / 2];
        *child = index % 2 == 0 ? item.first : item.second;
        return true;
      }
      if (index == count && !value.attributes().is_none()) {
        *child = value.attributes();
        return true;
      }
    }
    return false;
  };
  auto enter = [&](const Value& value) {
    if (value.is(Value::Kind::Storage)) {
      TORCH_CHECK(false, "cannot load '", source_,
                  "': it holds a bare storage; only tensors are supported");
    }
    if (value.is(Value::Kind::Global)) {
      TORCH_CHECK(false, "cannot load '", source_, "': it holds the class or function '",
                  value.global_name(), "' itself, which a weights file never does");
    }
    const void* id = value.identity();
    if (id == nullptr || done.count(id) != 0) return;
    if (!value.is(Value::Kind::Tuple) && !value.is(Value::Kind::List) &&
        !value.is(Value::Kind::Set) && !value.is(Value::Kind::Dict)) {
      return;
    }
    TORCH_CHECK(on_path.count(id) == 0, "cannot load '", source_,
                "': it contains a reference cycle (a container inside itself), which a "
                "weights file never does");
    TORCH_CHECK(path.size() < kMaxNesting, "cannot load '", source_, "': containers nest deeper ",
                "than ", kMaxNesting, " levels");
    on_path.insert(id);
    path.push_back({value, 0});
  };
  enter(root);
  while (!path.empty()) {
    Frame& frame = path.back();
    Value child;
    if (children_of(frame.value, frame.next++, &child)) {
      enter(child);
      continue;
    }
    on_path.erase(frame.value.identity());
    done.insert(frame.value.identity());
    path.pop_back();
  }
}

Value Unpickler::load() {
  stack_.clear();
  marks_.clear();
  memo_.clear();
  while (true) {
    const size_t opcode_position = position_;
    const auto opcode = static_cast<PickleOpCode>(read_byte());
    switch (opcode) {
      case PickleOpCode::PROTO: {  // PROTO
        const uint8_t protocol = read_byte();
        if (protocol > 5) fail("pickle protocol " + std::to_string(protocol) + " is unknown");
        break;
      }
      case PickleOpCode::FRAME:  // FRAME: a length prefix only; the opcodes simply continue
        read_bytes(8);
        break;
      case PickleOpCode::STOP: {  // STOP
        if (!marks_.empty()) fail("STOP inside a MARK");
        if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " values");
        Value result = std::move(stack_.back());
        stack_.clear();
        memo_.clear();
        validate(result);
        // Acyclic: the containers are the result's now, and must not be emptied on the way out.
        containers_.clear();
        warn_about_opaque_values();
        return result;
      }
      case PickleOpCode::MARK:  // MARK
        marks_.push_back(stack_.size());
        break;
      case PickleOpCode::POP:  // POP
        pop();
        break;
      case PickleOpCode::POP_MARK:  // POP_MARK
        pop_mark();
        break;
      case PickleOpCode::DUP:  // DUP
        push(top());
        break;
      case PickleOpCode::NONE:
        push(Value());
        break;
      case PickleOpCode::NEWTRUE:
        push(Value::boolean(true));
        break;
      case PickleOpCode::NEWFALSE:
        push(Value::boolean(false));
        break;
      case PickleOpCode::BININT:  // BININT: signed 32-bit
        push(Value::integer(static_cast<int32_t>(static_cast<uint32_t>(read_uint(4)))));
        break;
      case PickleOpCode::BININT1:
        push(Value::integer(static_cast<int64_t>(read_uint(1))));
        break;
      case PickleOpCode::BININT2:
        push(Value::integer(static_cast<int64_t>(read_uint(2))));
        break;
      case PickleOpCode::LONG1:    // LONG1
      case PickleOpCode::LONG4: {  // LONG4
        const uint64_t length = read_uint(opcode == PickleOpCode::LONG1 ? 1 : 4);
        const std::string_view raw = read_bytes(length);
        if (length > 8) {
          push(Value::big_integer(std::string(raw)));
          break;
        }
        uint64_t bits = 0;
        for (size_t i = length; i-- > 0;) bits = (bits << 8) | static_cast<unsigned char>(raw[i]);
        if (length > 0 && length < 8 && (static_cast<unsigned char>(raw[length - 1]) & 0x80)) {
          bits |= ~uint64_t{0} << (8 * length);  // sign-extend
        }
        push(Value::integer(static_cast<int64_t>(bits)));
        break;
      }
      case PickleOpCode::INT:     // INT (text)
      case PickleOpCode::LONG: {  // LONG (text)
        std::string line(read_line());
        if (opcode == PickleOpCode::INT && (line == "00" || line == "01")) {
          push(Value::boolean(line == "01"));
          break;
        }
        if (opcode == PickleOpCode::LONG && !line.empty() && line.back() == 'L') line.pop_back();
        errno = 0;
        char* end = nullptr;
        const long long value = std::strtoll(line.c_str(), &end, 10);
        if (line.empty() || *end != '\0') fail("a malformed text integer");
        if (errno == ERANGE) {
          // Protocols 0 and 1 write ints beyond 64 bits (the legacy format's magic number) as
          // decimal text.
          std::optional<std::string> big = decimal_to_little_endian(line);
          if (!big) fail("a malformed text integer");
          push(Value::big_integer(std::move(*big)));
          break;
        }
        if (errno != 0) fail("a malformed text integer");
        push(Value::integer(value));
        break;
      }
      case PickleOpCode::BINFLOAT: {  // BINFLOAT: big-endian double
        const std::string_view raw = read_bytes(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(raw[i]);
        double value;
        std::memcpy(&value, &bits, sizeof(value));
        push(Value::real(value));
        break;
      }
      case PickleOpCode::FLOAT: {  // FLOAT (text)
        const std::string line(read_line());
        char* end = nullptr;
        const double value = std::strtod(line.c_str(), &end);
        if (line.empty() || *end != '\0') fail("a malformed text float");
        push(Value::real(value));
        break;
      }
      case PickleOpCode::BINUNICODE:        // BINUNICODE
      case PickleOpCode::SHORT_BINUNICODE:  // SHORT_BINUNICODE
      case PickleOpCode::BINUNICODE8:       // BINUNICODE8
      case PickleOpCode::BINSTRING:  // BINSTRING (Python 2 str, loaded as str like torch.load does)
      case PickleOpCode::SHORT_BINSTRING: {  // SHORT_BINSTRING
        const int width = opcode == PickleOpCode::BINUNICODE || opcode == PickleOpCode::BINSTRING
                              ? 4
                          : opcode == PickleOpCode::BINUNICODE8 ? 8
                                                                : 1;
        const std::string_view text = read_bytes(read_uint(width));
        if (!is_valid_utf8(text)) fail("a string that is not valid UTF-8");
        push(Value::string(std::string(text)));
        break;
      }
      case PickleOpCode::BINBYTES:        // BINBYTES
      case PickleOpCode::SHORT_BINBYTES:  // SHORT_BINBYTES
      case PickleOpCode::BINBYTES8: {     // BINBYTES8
        const int width = opcode == PickleOpCode::BINBYTES         ? 4
                          : opcode == PickleOpCode::SHORT_BINBYTES ? 1
                                                                   : 8;
        push(Value::bytes(std::string(read_bytes(read_uint(width)))));
        break;
      }
      case PickleOpCode::EMPTY_TUPLE:
        push(Value::tuple({}));
        break;
      case PickleOpCode::TUPLE:
        push(Value::tuple(pop_mark()));
        break;
      case PickleOpCode::TUPLE1: {
        Value a = pop();
        push(Value::tuple({std::move(a)}));
        break;
      }
      case PickleOpCode::TUPLE2: {
        Value b = pop();
        Value a = pop();
        push(Value::tuple({std::move(a), std::move(b)}));
        break;
      }
      case PickleOpCode::TUPLE3: {
        Value c = pop();
        Value b = pop();
        Value a = pop();
        push(Value::tuple({std::move(a), std::move(b), std::move(c)}));
        break;
      }
      case PickleOpCode::EMPTY_LIST:
        push(Value::list());
        break;
      case PickleOpCode::LIST:
        push(Value::list(pop_mark()));
        break;
      case PickleOpCode::APPEND: {  // APPEND
        Value item = pop();
        if (top().is(Value::Kind::Opaque)) break;  // a list subclass: its items are skipped
        if (!top().is(Value::Kind::List)) fail("APPEND to a " + top().type_name());
        top().elements().push_back(std::move(item));
        break;
      }
      case PickleOpCode::APPENDS: {  // APPENDS
        std::vector<Value> items = pop_mark();
        if (top().is(Value::Kind::Opaque)) break;
        if (!top().is(Value::Kind::List)) fail("APPENDS to a " + top().type_name());
        auto& elements = top().elements();
        for (auto& item : items) elements.push_back(std::move(item));
        break;
      }
      case PickleOpCode::EMPTY_DICT:
        push(Value::dict());
        break;
      case PickleOpCode::DICT: {  // DICT
        std::vector<Value> items = pop_mark();
        if (items.size() % 2 != 0) fail("DICT with an odd number of items");
        Value dict = Value::dict();
        for (size_t i = 0; i < items.size(); i += 2) dict.set_item(items[i], items[i + 1]);
        push(std::move(dict));
        break;
      }
      case PickleOpCode::SETITEM: {  // SETITEM
        Value value = pop();
        Value key = pop();
        if (top().is(Value::Kind::Opaque)) break;  // a dict subclass (defaultdict, ...)
        if (!top().is(Value::Kind::Dict)) fail("SETITEM on a " + top().type_name());
        top().set_item(std::move(key), std::move(value));
        break;
      }
      case PickleOpCode::SETITEMS: {  // SETITEMS
        std::vector<Value> items = pop_mark();
        if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
        if (top().is(Value::Kind::Opaque)) break;
        if (!top().is(Value::Kind::Dict)) fail("SETITEMS on a " + top().type_name());
        for (size_t i = 0; i < items.size(); i += 2) top().set_item(items[i], items[i + 1]);
        break;
      }
      case PickleOpCode::EMPTY_SET:
        push(Value::set());
        break;
      case PickleOpCode::ADDITEMS: {  // ADDITEMS
        std::vector<Value> items = pop_mark();
        if (!top().is(Value::Kind::Set)) fail("ADDITEMS to a " + top().type_name());
        auto& elements = top().elements();
        for (auto& item : items) elements.push_back(std::move(item));
        break;
      }
      case PickleOpCode::FROZENSET:  // FROZENSET
        push(Value::set(pop_mark()));
        break;
      case PickleOpCode::PUT: {  // PUT (text)
        const std::string line(read_line());
        char* end = nullptr;
        const unsigned long long index = std::strtoull(line.c_str(), &end, 10);
        if (line.empty() || *end != '\0') fail("a malformed PUT");
        remember(index, top());
        break;
      }
      case PickleOpCode::GET: {  // GET (text)
        const std::string line(read_line());
        char* end = nullptr;
        const unsigned long long index = std::strtoull(line.c_str(), &end, 10);
        if (line.empty() || *end != '\0') fail("a malformed GET");
        push(recall(index));
        break;
      }
      case PickleOpCode::BINPUT:
        remember(read_uint(1), top());
        break;
      case PickleOpCode::LONG_BINPUT:
        remember(read_uint(4), top());
        break;
      case PickleOpCode::MEMOIZE:  // MEMOIZE
        remember(memo_.size(), top());
        break;
      case PickleOpCode::BINGET:
        push(recall(read_uint(1)));
        break;
      case PickleOpCode::LONG_BINGET:
        push(recall(read_uint(4)));
        break;
      case PickleOpCode::GLOBAL: {  // GLOBAL
        const std::string module(read_line());
        const std::string name(read_line());
        push(global(module, name));
        break;
      }
      case PickleOpCode::STACK_GLOBAL: {  // STACK_GLOBAL
        Value name = pop();
        Value module = pop();
        if (!name.is(Value::Kind::String) || !module.is(Value::Kind::String)) {
          fail("STACK_GLOBAL of non-strings");
        }
        push(global(module.as_string(), name.as_string()));
        break;
      }
      case PickleOpCode::REDUCE: {  // REDUCE
        Value args = pop();
        Value callable = pop();
        push(call(callable, args));
        break;
      }
      case PickleOpCode::NEWOBJ: {  // NEWOBJ: cls.__new__(cls, *args); only Parameter is allowed
        Value args = pop();
        Value cls = pop();
        if (cls.is(Value::Kind::Opaque)) {
          push(Value::opaque(cls.global_name()));
          break;
        }
        if (!cls.is(Value::Kind::Global) || cls.global_name() != "torch.nn.parameter.Parameter") {
          fail("NEWOBJ of " + (cls.is(Value::Kind::Global) ? cls.global_name() : cls.type_name()) +
               " (only torch.nn.Parameter may be instantiated)");
        }
        push(call(cls, args));
        break;
      }
      case PickleOpCode::BUILD: {  // BUILD
        Value state = pop();
        build(state);
        break;
      }
      case PickleOpCode::BINPERSID: {  // BINPERSID
        Value id = pop();
        push(persistent_load(id));
        break;
      }
      default: {
        position_ = opcode_position;
        const char* name = refused_opcode_name(opcode);
        if (name != nullptr) {
          fail(std::string("the pickle uses opcode ") + name +
               ", which a weights file never needs; refusing to load it");
        }
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned>(opcode));
        fail(std::string("unknown pickle opcode ") + hex + "; the file is corrupted or not a " +
             "PyTorch checkpoint");
      }
    }
  }
}

}  // namespace densenet::pth
