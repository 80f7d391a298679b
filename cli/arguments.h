#pragma once

#include "usage_error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace densenet::cli {

/// One `--name` a command accepts.
struct OptionSpec {
  std::string name;        // without the leading dashes, e.g. "block-config"
  std::string value_name;  // empty for a flag that takes no value, e.g. "LIST"
  std::string help;
};

/// Command-line options of one command: `--name value`, `--name=value` and `--flag`, plus
/// positional arguments. Unknown options and missing values are errors that say which.
class Arguments {
 public:
  Arguments(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs);

  bool has(const std::string& name) const;
  std::optional<std::string> value(const std::string& name) const;
  bool flag(const std::string& name) const { return has(name); }
  std::optional<int64_t> integer(const std::string& name) const;
  std::optional<double> real(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
};

/// Help lines for `specs`, aligned.
std::string format_options(const std::vector<OptionSpec>& specs);

}  // namespace densenet::cli
