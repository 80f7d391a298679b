#include "arguments.h"
#include "commands.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

struct Command {
  std::function<int(const std::vector<std::string>&)> run;
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"info",
       {densenet::cli::info_command, "describe an architecture: blocks, parameters, MACs, keys"}},
      {"gradcheck",
       {densenet::cli::gradcheck_command, "check efficient/minimal modes against naive"}},
      {"bench", {densenet::cli::bench_command, "time a training step and measure its peak memory"}},
      {"convert",
       {densenet::cli::convert_command,
        "rewrite a checkpoint's keys (torchvision, legacy, efficient-pytorch) as .pth or "
        ".safetensors"}},
      {"inspect", {densenet::cli::inspect_command, "list the tensors and values in a checkpoint"}},
      {"predict", {densenet::cli::predict_command, "classify JPEG/PNG images with given weights"}},
  };
  return table;
}

void print_usage(std::FILE* stream) {
  std::fprintf(stream,
               "usage: densenet COMMAND [options]   (densenet COMMAND --help for details)\n\n");
  std::fprintf(stream, "Memory-efficient DenseNet / DenseNet-BC on LibTorch.\n\ncommands:\n");
  for (const auto& item : commands()) {
    std::fprintf(stream, "  %-10s %s\n", item.first.c_str(), item.second.summary);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  const auto command = commands().find(name);
  if (command == commands().end()) {
    std::fprintf(stderr, "densenet: unknown command '%s'\n\n", name.c_str());
    print_usage(stderr);
    return 2;
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return command->second.run(args);
  } catch (const densenet::cli::UsageError& e) {
    std::fprintf(stderr, "densenet %s: %s\n(see 'densenet %s --help')\n", name.c_str(), e.what(),
                 name.c_str());
    return 2;
  } catch (const c10::Error& e) {
    // what_without_backtrace: a user mistake deserves one clear line, not a C++ stack.
    std::fprintf(stderr, "densenet %s: error: %s\n", name.c_str(), e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "densenet %s: error: %s\n", name.c_str(), e.what());
    return 1;
  }
}
