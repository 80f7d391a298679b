#pragma once

// The table of configuration keys (config_keys.cpp), shared by config.cpp: each key's
// description with the code that reads and writes its value.
#include "densenet/train/config.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace densenet::train::detail {

/// One key: its description (ConfigKey), how its value is set from YAML and read back as YAML.
/// The modifiers fill the description's columns, so that an entry of the table reads as
///   DENSENET_KEY("batch-size", "int", "images per optimiser step", ...).at_least(1)
struct KeyAccess {
  ConfigKey key;
  std::function<void(TrainConfig&, const YAML::Node&)> set;
  std::function<YAML::Node(const TrainConfig&)> get;

  KeyAccess&& model() &&;                 // an architecture key (eval takes it too)
  KeyAccess&& may_change_on_resume() &&;  // where and how fast, not what
  KeyAccess&& for_eval() &&;              // `densenet eval` takes it
  KeyAccess&& alias(
      const char* name) &&;  // another spelling (timm's), on the command line and in YAML
  KeyAccess&& one_of(std::initializer_list<const char*> choices) &&;
  KeyAccess&& in(ValueRange range) &&;
  KeyAccess&& at_least(double min, std::string note = "") &&;
  KeyAccess&& above(double min, std::string note = "") &&;
};

/// Every key, in the order config.yaml is written.
const std::vector<KeyAccess>& key_table();

/// The entry of `key` ('_' or '-'); throws c10::ValueError for an unknown key, with the closest
/// known spelling.
const KeyAccess& find_key(const std::string& key);

/// "batch_size" -> "batch-size".
std::string normalize_key(std::string key);

/// A command-line value as YAML: a list may be given bare ("6,12,24"). Throws c10::ValueError.
YAML::Node node_from_text(const ConfigKey& key, const std::string& text);

}  // namespace densenet::train::detail
