#include "io/pth/pickler.h"

#include "io/pth/pickle_opcodes.h"
#include "io/pth/storage_types.h"

#include <c10/util/Exception.h>

#include <cstring>

namespace densenet::pth {

namespace {

void append_le(std::string& out, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// Latin-1 bytes as UTF-8 text, for _codecs.encode(text, 'latin1').
std::string latin1_to_utf8(const std::string& bytes) {
  std::string text;
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80) {
      text.push_back(static_cast<char>(byte));
    } else {
      text.push_back(static_cast<char>(0xC0 | (byte >> 6)));
      text.push_back(static_cast<char>(0x80 | (byte & 0x3F)));
    }
  }
  return text;
}

}  // namespace

std::string Pickler::pickle(const Value& root) {
  out_.clear();
  out_ += byte_of(PickleOpCode::PROTO);
  out_ += '\x02';  // protocol 2, as torch.save
  write(root);
  out_ += byte_of(PickleOpCode::STOP);
  return std::move(out_);
}

void Pickler::write_global(const char* module, const char* name) {
  out_ += byte_of(PickleOpCode::GLOBAL);
  out_ += module;
  out_ += '\n';
  out_ += name;
  out_ += '\n';
}

void Pickler::write_empty_ordered_dict() {
  write_global("collections", "OrderedDict");
  out_ += byte_of(PickleOpCode::EMPTY_TUPLE);
  out_ += byte_of(PickleOpCode::REDUCE);
}

void Pickler::write_list(const std::vector<Value>& elements) {
  out_ += byte_of(PickleOpCode::EMPTY_LIST);
  if (elements.empty()) return;
  out_ += byte_of(PickleOpCode::MARK);
  for (const auto& element : elements) write(element);
  out_ += byte_of(PickleOpCode::APPENDS);
}

void Pickler::write_string(const std::string& text) {
  out_ += byte_of(PickleOpCode::BINUNICODE);
  append_le(out_, text.size(), 4);
  out_ += text;
}

void Pickler::write_int(int64_t value) {
  if (value >= 0 && value < 256) {
    out_ += byte_of(PickleOpCode::BININT1);
    append_le(out_, static_cast<uint64_t>(value), 1);
  } else if (value >= 0 && value < 65536) {
    out_ += byte_of(PickleOpCode::BININT2);
    append_le(out_, static_cast<uint64_t>(value), 2);
  } else if (value >= INT32_MIN && value <= INT32_MAX) {
    out_ += byte_of(PickleOpCode::BININT);
    append_le(out_, static_cast<uint32_t>(static_cast<int32_t>(value)), 4);
  } else {
    out_ += byte_of(PickleOpCode::LONG1);  // 8 bytes, two's complement
    out_ += '\x08';
    append_le(out_, static_cast<uint64_t>(value), 8);
  }
}

void Pickler::write(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::None:
      out_ += byte_of(PickleOpCode::NONE);
      return;
    case Value::Kind::Bool:
      out_ += byte_of(value.as_bool() ? PickleOpCode::NEWTRUE : PickleOpCode::NEWFALSE);
      return;
    case Value::Kind::Int:
      if (value.is_big_integer()) {
        const std::string& raw = value.big_integer_bytes();
        TORCH_CHECK(raw.size() < 256, "integer too large to save");
        out_ += byte_of(PickleOpCode::LONG1);
        out_ += static_cast<char>(raw.size());
        out_ += raw;
      } else {
        write_int(value.as_int());
      }
      return;
    case Value::Kind::Float: {
      const double real = value.as_float();
      uint64_t bits;
      std::memcpy(&bits, &real, sizeof(bits));
      out_ += byte_of(PickleOpCode::BINFLOAT);
      for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
      return;
    }
    case Value::Kind::String:
      write_string(value.as_string());
      return;
    case Value::Kind::Bytes:
      // Protocol 2 has no bytes opcode; torch.save writes _codecs.encode(text, 'latin1').
      write_global("_codecs", "encode");
      write_string(latin1_to_utf8(value.as_string()));
      write_string("latin1");
      out_ += byte_of(PickleOpCode::TUPLE2);
      out_ += byte_of(PickleOpCode::REDUCE);
      return;
    case Value::Kind::Tuple: {
      const auto& elements = value.elements();
      if (elements.empty()) {
        out_ += byte_of(PickleOpCode::EMPTY_TUPLE);
        return;
      }
      if (elements.size() > 3) out_ += byte_of(PickleOpCode::MARK);
      for (const auto& element : elements) write(element);
      out_ += byte_of(elements.size() == 1   ? PickleOpCode::TUPLE1
                      : elements.size() == 2 ? PickleOpCode::TUPLE2
                      : elements.size() == 3 ? PickleOpCode::TUPLE3
                                             : PickleOpCode::TUPLE);
      return;
    }
    case Value::Kind::List:
      write_list(value.elements());
      return;
    case Value::Kind::Set:
      write_global("builtins", "set");
      write_list(value.elements());
      out_ += byte_of(PickleOpCode::TUPLE1);
      out_ += byte_of(PickleOpCode::REDUCE);
      return;
    case Value::Kind::Dict:
      if (value.is_ordered_dict()) {
        write_empty_ordered_dict();
      } else {
        out_ += byte_of(PickleOpCode::EMPTY_DICT);
      }
      if (!value.items().empty()) {
        out_ += byte_of(PickleOpCode::MARK);
        for (const auto& item : value.items()) {
          write(item.first);
          write(item.second);
        }
        out_ += byte_of(PickleOpCode::SETITEMS);
      }
      if (!value.attributes().is_none()) {
        write(value.attributes());
        out_ += byte_of(PickleOpCode::BUILD);
      }
      return;
    case Value::Kind::Tensor:
      write_tensor(value.as_tensor());
      return;
    case Value::Kind::Opaque:
      TORCH_CHECK(false, "cannot write the Python object '", value.global_name(),
                  "' back: it was read as an opaque value (its contents were skipped); keep "
                  "only the state dict (convert --state-dict-only)");
    case Value::Kind::Storage:
    case Value::Kind::Global:
      break;
  }
  TORCH_CHECK(false, "cannot save a ", value.type_name(), " in a checkpoint");
}

void Pickler::write_tensor(const torch::Tensor& original) {
  TORCH_CHECK(original.layout() == torch::kStrided, "cannot save a tensor with layout ",
              original.layout(), ": only dense (strided) tensors are supported");
  TORCH_CHECK(!original.is_quantized(), "cannot save a quantized tensor");
  torch::Tensor tensor = original.is_cpu() ? original : original.cpu();
  if (tensor.is_conj()) tensor = tensor.resolve_conj();
  if (tensor.is_neg()) tensor = tensor.resolve_neg();
  const c10::Storage& storage = tensor.storage();
  const torch::Dtype dtype = tensor.scalar_type();
  const std::string type_name = storage_type_name(dtype);
  const void* identity = storage.unsafeGetStorageImpl();
  auto found = storage_keys_.find(identity);
  if (found == storage_keys_.end()) {
    found = storage_keys_.emplace(identity, std::make_pair(storages_.size(), dtype)).first;
    storages_.push_back({std::to_string(storages_.size()), storage});
  }
  TORCH_CHECK(found->second.second == dtype,
              "cannot save tensors of different dtypes that share one storage (",
              found->second.second, " and ", dtype, "), as torch.save cannot either");
  const std::string& key = storages_[found->second.first].key;
  const int64_t element_size = static_cast<int64_t>(tensor.element_size());
  const int64_t numel = static_cast<int64_t>(storage.nbytes()) / element_size;

  write_global("torch._utils", "_rebuild_tensor_v2");
  out_ += byte_of(PickleOpCode::MARK);
  out_ += byte_of(PickleOpCode::MARK);  // the persistent id
  write_string("storage");
  write_global("torch", type_name.c_str());
  write_string(key);
  write_string("cpu");
  write_int(numel);
  out_ += byte_of(PickleOpCode::TUPLE);
  out_ += byte_of(PickleOpCode::BINPERSID);
  write_int(tensor.storage_offset());
  const Value sizes = [&] {
    std::vector<Value> values;
    for (const int64_t size : tensor.sizes()) values.push_back(Value::integer(size));
    return Value::tuple(std::move(values));
  }();
  const Value strides = [&] {
    std::vector<Value> values;
    for (const int64_t stride : tensor.strides()) values.push_back(Value::integer(stride));
    return Value::tuple(std::move(values));
  }();
  write(sizes);
  write(strides);
  out_ += byte_of(tensor.requires_grad() ? PickleOpCode::NEWTRUE : PickleOpCode::NEWFALSE);
  write_empty_ordered_dict();  // backward hooks: always empty
  out_ += byte_of(PickleOpCode::TUPLE);
  out_ += byte_of(PickleOpCode::REDUCE);
}

}  // namespace densenet::pth
