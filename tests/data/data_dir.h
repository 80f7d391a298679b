#pragma once

#include <string>

namespace densenet::testing {

/// Where tests/reference/make_data.py wrote the generated datasets (a setup of the "golden"
/// fixture).
inline std::string data_dir() {
  return std::string(DENSENET_GOLDEN_DIR) + "/data";
}

}  // namespace densenet::testing
