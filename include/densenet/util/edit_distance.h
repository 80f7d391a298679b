#pragma once

#include <cstddef>
#include <string>

namespace densenet {

/// Levenshtein distance (insertions, deletions, substitutions), for "did you mean" suggestions
/// of option and config-key spellings. CLI11 2.1 (Debian's) and yaml-cpp have none.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace densenet
