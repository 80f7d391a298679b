#include "densenet/io/pth_file.h"

#include "densenet/io/atomic_file.h"
#include "densenet/io/safetensors.h"
#include "io/pth/pickler.h"
#include "io/pth/unpickler.h"
#include "io/pth/zip_archive.h"

#include <c10/util/Exception.h>

#include <cstring>
#include <map>
#include <set>

namespace densenet::pth {

namespace {

// pickle.dumps(0x1950a86a20f9469cfc6c)'s LONG1 payload and the legacy protocol version.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr int64_t kLegacyProtocolVersion = 1001;

struct LoadedStorage {
  torch::Dtype dtype;
  torch::Tensor flat;
};

torch::Tensor check_cached(const std::map<std::string, LoadedStorage>& cache,
                           const std::string& key, torch::Dtype dtype, int64_t numel,
                           const std::string& source) {
  const auto found = cache.find(key);
  if (found == cache.end()) return {};
  TORCH_CHECK(found->second.dtype == dtype && found->second.flat.numel() == numel, "cannot load '",
              source, "': storage '", key, "' is used with different types or sizes");
  return found->second.flat;
}

// Refuses files that are something else, with a hint at what they are.
[[noreturn]] void not_a_checkpoint(std::string_view bytes, const std::string& source) {
  if (bytes.empty()) TORCH_CHECK(false, "cannot load '", source, "': the file is empty");
  if (bytes.size() > 262 && bytes.substr(257, 5) == "ustar") {
    TORCH_CHECK(false, "cannot load '", source,
                "': it is in PyTorch's tar format (before 0.1.10), which is not supported; "
                "re-save it with a newer PyTorch");
  }
  if (looks_like_safetensors(bytes)) {
    TORCH_CHECK(false, "cannot load '", source,
                "': it looks like a safetensors file, not a PyTorch .pth checkpoint");
  }
  TORCH_CHECK(false, "cannot load '", source,
              "': not a PyTorch checkpoint (neither torch.save's zip format nor its legacy "
              "format)");
}

Checkpoint parse_zip(std::string_view bytes, const std::string& source) {
  ZipReader zip(bytes, source);
  for (const auto& entry : zip.entries()) {
    const auto slash = entry.name.find('/');
    if (slash != std::string::npos && (entry.name.substr(slash) == "/constants.pkl" ||
                                       entry.name.compare(slash, 6, "/code/") == 0)) {
      TORCH_CHECK(false, "cannot load '", source,
                  "': it is a TorchScript archive (torch.jit.save), not a checkpoint; save the "
                  "weights with torch.save(model.state_dict(), path)");
    }
  }
  // The archive is one folder (its name is arbitrary) holding data.pkl and data/<key>.
  std::string prefix;
  for (const auto& entry : zip.entries()) {
    const auto slash = entry.name.find('/');
    if (slash != std::string::npos && entry.name.substr(slash) == "/data.pkl") {
      TORCH_CHECK(prefix.empty(), "cannot load '", source, "': it holds two data.pkl records");
      prefix = entry.name.substr(0, slash + 1);
    }
  }
  TORCH_CHECK(!prefix.empty(), "cannot load '", source,
              "': a zip archive without data.pkl, so not a torch.save checkpoint");
  if (const auto* byteorder = zip.find(prefix + "byteorder")) {
    const std::string_view order = zip.read(*byteorder);
    TORCH_CHECK(order == "little", "cannot load '", source, "': it was saved with byte order '",
                std::string(order), "'; only little-endian checkpoints are supported");
  }
  std::map<std::string, LoadedStorage> cache;
  StorageLoader load_storage = [&](const std::string& key, torch::Dtype dtype, int64_t numel) {
    if (torch::Tensor cached = check_cached(cache, key, dtype, numel, source); cached.defined()) {
      return cached;
    }
    const auto* record = zip.find(prefix + "data/" + key);
    TORCH_CHECK(record != nullptr, "cannot load '", source, "': storage record 'data/", key,
                "' is missing; the file is truncated or corrupted");
    const uint64_t element_size = c10::elementSize(dtype);
    TORCH_CHECK(static_cast<uint64_t>(numel) <= record->size / element_size, "cannot load '",
                source, "': storage 'data/", key, "' holds ", record->size, " bytes, but ", numel,
                " elements of ", dtype, " need ", static_cast<uint64_t>(numel) * element_size);
    const std::string_view data = zip.read(*record);
    torch::Tensor flat = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    if (numel > 0) std::memcpy(flat.data_ptr(), data.data(), numel * element_size);
    cache.emplace(key, LoadedStorage{dtype, flat});
    return flat;
  };
  const auto* pickle = zip.find(prefix + "data.pkl");
  Unpickler unpickler(zip.read(*pickle), source, load_storage);
  return {unpickler.load(), Format::Zip};
}

// A legacy file is recognised by its structure, not by the bytes of one pickle protocol: its
// first pickle, in whatever protocol torch.save(..., pickle_protocol=N) used (1 to 5; protocol 0
// cannot save tensors), unpickles to the magic number. The unpickler is the safe one, and it
// stops at the first byte that is not a pickle.
bool starts_with_legacy_magic(std::string_view bytes, const std::string& source) {
  try {
    Unpickler header(bytes, source);
    const Value magic = header.load();
    return magic.is_big_integer() && magic.big_integer_bytes() == kLegacyMagic;
  } catch (const c10::Error&) {
    return false;
  }
}

Checkpoint parse_legacy(std::string_view bytes, const std::string& source) {
  // Magic number, protocol version and system info are separate small pickles.
  Unpickler header(bytes, source);
  header.load();  // the magic number, checked by starts_with_legacy_magic
  const Value version = header.load();
  TORCH_CHECK(version.is(Value::Kind::Int) && !version.is_big_integer() &&
                  version.as_int() == kLegacyProtocolVersion,
              "cannot load '", source, "': unsupported legacy protocol version");
  const Value system = header.load();
  const Value* little_endian = system.find("little_endian");
  TORCH_CHECK(
      little_endian == nullptr || !little_endian->is(Value::Kind::Bool) || little_endian->as_bool(),
      "cannot load '", source, "': it was saved on a big-endian machine, which is not supported");
  const size_t body = header.position();

  // The storages' data follows the pickles, so each is allocated now and filled later. The
  // total allocated is bounded by the file's size: a forged element count cannot exhaust memory.
  std::map<std::string, LoadedStorage> cache;
  uint64_t allocated = 0;
  StorageLoader load_storage = [&](const std::string& key, torch::Dtype dtype, int64_t numel) {
    if (torch::Tensor cached = check_cached(cache, key, dtype, numel, source); cached.defined()) {
      return cached;
    }
    const uint64_t element_size = c10::elementSize(dtype);
    const uint64_t budget = bytes.size() - allocated;
    TORCH_CHECK(static_cast<uint64_t>(numel) <= budget / element_size, "cannot load '", source,
                "': storage '", key, "' claims ", numel, " elements of ", dtype,
                ", more than the file holds; the file is truncated or corrupted");
    allocated += static_cast<uint64_t>(numel) * element_size;
    torch::Tensor flat = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    cache.emplace(key, LoadedStorage{dtype, flat});
    return flat;
  };
  Unpickler main(bytes.substr(body), source, load_storage);
  Value root = main.load();
  Unpickler keys_reader(bytes.substr(body + main.position()), source);
  const Value keys = keys_reader.load();
  TORCH_CHECK(keys.is(Value::Kind::List), "cannot load '", source, "': the storage key list is a ",
              keys.type_name());
  uint64_t at = body + main.position() + keys_reader.position();
  std::set<std::string> filled;
  for (const auto& key_value : keys.elements()) {
    TORCH_CHECK(key_value.is(Value::Kind::String), "cannot load '", source,
                "': a storage key that is not a string");
    const std::string& key = key_value.as_string();
    const auto found = cache.find(key);
    TORCH_CHECK(found != cache.end(), "cannot load '", source, "': data for storage '", key,
                "', which no tensor uses");
    TORCH_CHECK(filled.insert(key).second, "cannot load '", source, "': storage '", key,
                "' has data twice");
    TORCH_CHECK(bytes.size() - at >= 8, "cannot load '", source, "': the data of storage '", key,
                "' is missing; the file is truncated");
    int64_t count = 0;
    for (int i = 7; i >= 0; --i) {
      count = static_cast<int64_t>((static_cast<uint64_t>(count) << 8) |
                                   static_cast<unsigned char>(bytes[at + i]));
    }
    at += 8;
    const torch::Tensor& flat = found->second.flat;
    TORCH_CHECK(count == flat.numel(), "cannot load '", source, "': storage '", key, "' has ",
                count, " elements on disk but ", flat.numel(), " in the pickle");
    const uint64_t length = static_cast<uint64_t>(count) * flat.element_size();
    TORCH_CHECK(bytes.size() - at >= length, "cannot load '", source, "': the data of storage '",
                key, "' is cut short; the file is truncated");
    if (length > 0) std::memcpy(flat.data_ptr(), bytes.data() + at, length);
    at += length;
  }
  for (const auto& entry : cache) {
    TORCH_CHECK(filled.count(entry.first) != 0, "cannot load '", source, "': storage '",
                entry.first, "' has no data; the file is truncated or corrupted");
  }
  return {root, Format::Legacy};
}

}  // namespace

Checkpoint parse_checkpoint(std::string_view bytes, const std::string& source) {
  if (looks_like_zip(bytes)) return parse_zip(bytes, source);
  if (starts_with_legacy_magic(bytes, source)) return parse_legacy(bytes, source);
  not_a_checkpoint(bytes, source);
}

Checkpoint read_checkpoint(const std::string& path) {
  const std::string bytes = read_file(path);
  return parse_checkpoint(bytes, path);
}

std::string serialize_checkpoint(const Value& root, uint64_t zip64_threshold) {
  Pickler pickler;
  const std::string pickle = pickler.pickle(root);
  ZipWriter zip(zip64_threshold);
  zip.add("archive/data.pkl", pickle);
  zip.add("archive/byteorder", "little");
  for (const auto& record : pickler.storages()) {
    const void* data = record.storage.data();
    zip.add("archive/data/" + record.key,
            std::string_view(static_cast<const char*>(data), record.storage.nbytes()));
  }
  zip.add("archive/version", "3\n");
  return zip.finish();
}

void write_checkpoint(const std::string& path, const Value& root) {
  write_file_atomically(path, serialize_checkpoint(root));
}

}  // namespace densenet::pth
