#include "config_options.h"

namespace densenet::cli {
namespace {

std::string value_name(const std::string& type) {
  if (type == "int list" || type == "real list") return "LIST";
  if (type == "int") return "INT";
  if (type == "real") return "X";
  if (type == "size") return "SIZE";
  if (type == "bool") return "[BOOL]";
  return "TEXT";
}

}  // namespace

CLI::Option* add_config_option(CLI::App& command, const train::ConfigKey& key,
                               std::map<std::string, std::string>& values,
                               const std::string& group) {
  static const train::TrainConfig defaults;
  const std::string shown = train::config_value(defaults, key.name);
  const bool no_default = shown == "null" || shown == "\"\"" || shown == "~";
  const std::string help = key.described_help() + (no_default ? "" : " [default: " + shown + "]");
  std::string names = "--" + key.name;
  std::string underscored = key.name;
  for (char& c : underscored) c = c == '-' ? '_' : c;
  if (underscored != key.name) names += ",--" + underscored;            // the original's spelling
  for (const std::string& alias : key.aliases) names += ",--" + alias;  // e.g. timm's
  std::string& value = values[key.name];
  CLI::Option* option = key.type == "bool" ? command.add_flag(names, value, help)->expected(0, 1)
                                           : command.add_option(names, value, help);
  option->type_name(value_name(key.type));
  // A later flag wins, as a flag wins over the config file.
  option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  option->group(group);
  return option;
}

}  // namespace densenet::cli
