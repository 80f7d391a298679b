#include "arguments.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace densenet::cli {

namespace {

const OptionSpec* find_spec(const std::vector<OptionSpec>& specs, const std::string& name) {
  for (const auto& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

Arguments::Arguments(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      if (arg.size() > 1 && arg[0] == '-' && !(arg[1] >= '0' && arg[1] <= '9')) {
        throw UsageError("unknown option '" + arg + "' (options are spelled --name)");
      }
      positionals_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const auto equals = name.find('='); equals != std::string::npos) {
      inline_value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const OptionSpec* spec = find_spec(specs, name);
    if (spec == nullptr) throw UsageError("unknown option '--" + name + "'");
    if (values_.count(name)) throw UsageError("option '--" + name + "' given twice");
    if (spec->value_name.empty()) {
      if (inline_value) throw UsageError("option '--" + name + "' takes no value");
      values_[name] = "";
    } else if (inline_value) {
      values_[name] = *inline_value;
    } else {
      if (i + 1 >= args.size()) {
        throw UsageError("option '--" + name + "' needs a value (" + spec->value_name + ")");
      }
      values_[name] = args[++i];
    }
  }
}

bool Arguments::has(const std::string& name) const {
  return values_.count(name) > 0;
}

std::optional<std::string> Arguments::value(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> Arguments::integer(const std::string& name) const {
  const auto text = value(name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(text->c_str(), &end, 10);
  if (text->empty() || *end != '\0' || errno != 0) {
    throw UsageError("option '--" + name + "' expects an integer, got '" + *text + "'");
  }
  return parsed;
}

std::optional<double> Arguments::real(const std::string& name) const {
  const auto text = value(name);
  if (!text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double parsed = std::strtod(text->c_str(), &end);
  if (text->empty() || *end != '\0' || errno != 0 || !std::isfinite(parsed)) {
    throw UsageError("option '--" + name + "' expects a number, got '" + *text + "'");
  }
  return parsed;
}

std::string format_options(const std::vector<OptionSpec>& specs) {
  std::vector<std::string> heads;
  size_t width = 0;
  for (const auto& spec : specs) {
    std::string head = "--" + spec.name;
    if (!spec.value_name.empty()) head += " " + spec.value_name;
    width = std::max(width, head.size());
    heads.push_back(head);
  }
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    out += "  " + heads[i] + std::string(width - heads[i].size() + 2, ' ') + specs[i].help + "\n";
  }
  return out;
}

}  // namespace densenet::cli
