#pragma once

#include "densenet/io/pth_value.h"

#include <string>
#include <string_view>

namespace densenet::pth {

/// The two on-disk formats of torch.save: a zip archive (PyTorch >= 1.6, the default) and the
/// legacy stream of pickles followed by raw storages (what torchvision's published weights use).
enum class Format { Zip, Legacy };

struct Checkpoint {
  Value root;     // whatever was saved: a state dict, {epoch, state_dict, ...}, ...
  Format format;  // as read
};

/// Parses a whole .pth file held in memory, safely: see Unpickler for what is accepted. Tensors
/// are CPU tensors that own their data (storages shared in the file stay shared). Truncated,
/// corrupted, foreign and hostile files are a c10::Error naming `source` and the problem.
Checkpoint parse_checkpoint(std::string_view bytes, const std::string& source);

Checkpoint read_checkpoint(const std::string& path);

/// Serialises `root` in the zip format that torch.load (1.6 and later) reads: pickle protocol 2,
/// one record per distinct storage, tensors on any device written from CPU copies.
/// `zip64_threshold` is for tests (see ZipWriter).
std::string serialize_checkpoint(const Value& root, uint64_t zip64_threshold = 0xFFFFFFFFu);

/// Writes atomically (see write_file_atomically).
void write_checkpoint(const std::string& path, const Value& root);

}  // namespace densenet::pth
