#include "commands.h"

#include "densenet/util/edit_distance.h"

#include <sstream>

#include "usage_error.h"

#include <algorithm>
#include <vector>

namespace densenet::cli {

namespace {

// The closest long option of `command` to `given` ("--growth", "--growthrate"), or "".
std::string closest_option(const CLI::App& command, std::string given) {
  given = given.substr(given.find_first_not_of('-'));
  given = given.substr(0, given.find('='));
  std::string best;
  size_t best_distance = std::max<size_t>(2, given.size() / 3) + 1;
  for (const CLI::Option* option : command.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      // A prefix ("--growth" for "--growth-rate") is as good as one typo.
      const bool prefix = given.size() >= 3 && name.compare(0, given.size(), given) == 0;
      const size_t distance = prefix ? 1 : edit_distance(given, name);
      if (distance < best_distance) {
        best_distance = distance;
        best = "--" + name;
      }
    }
  }
  return best;
}

void reject_extras(const CLI::App& command) {
  const std::vector<std::string> extras = command.remaining();
  if (extras.empty()) return;
  const std::string& first = extras.front();
  if (first.size() > 1 && first[0] == '-' && !(first[1] >= '0' && first[1] <= '9')) {
    const std::string suggestion = closest_option(command, first);
    throw UsageError("unknown option '" + first.substr(0, first.find('=')) + "'" +
                     (suggestion.empty() ? "" : " (did you mean " + suggestion + "?)"));
  }
  throw UsageError(command.get_name() + " takes no further positional arguments, got '" + first +
                   "'");
}

}  // namespace

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description,
                      std::function<int()> run) {
  CLI::App* command = app.add_subcommand(name, description);
  // Unknown arguments are collected instead of rejected, so that the error can suggest a
  // spelling (reject_extras).
  command->allow_extras();
  command->callback([command, run] {
    reject_extras(*command);
    const int code = run();
    if (code != 0) throw CommandExit{code};
  });
  return command;
}

std::string wrapped(const std::string& text, size_t width) {
  std::string out, line, word;
  std::istringstream words(text);
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line;
}

}  // namespace densenet::cli
