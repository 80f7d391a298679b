#include "legacy_command.h"

#include "commands.h"

namespace densenet::cli {

void add_legacy_command(CLI::App& app, const std::string& name, const std::string& description,
                        LegacyCommand run) {
  CLI::App* command = app.add_subcommand(name, description);
  command->prefix_command();  // every argument is passed through, --help included
  command->set_help_flag();
  command->callback([command, run] {
    const int code = run(command->remaining());
    if (code != 0) throw CommandExit{code};
  });
}

void add_info_command(CLI::App& app) {
  add_legacy_command(app, "info", "describe an architecture: blocks, parameters, MACs, keys",
                     info_command);
}
void add_bench_command(CLI::App& app) {
  add_legacy_command(app, "bench", "time a training step and measure its peak memory",
                     bench_command);
}
void add_gradcheck_command(CLI::App& app) {
  add_legacy_command(app, "gradcheck", "check efficient/minimal modes against naive",
                     gradcheck_command);
}
void add_convert_command(CLI::App& app) {
  add_legacy_command(app, "convert", "rewrite a checkpoint's keys as .pth or .safetensors",
                     convert_command);
}
void add_inspect_command(CLI::App& app) {
  add_legacy_command(app, "inspect", "list the tensors and values in a checkpoint",
                     inspect_command);
}
void add_predict_command(CLI::App& app) {
  add_legacy_command(app, "predict", "classify JPEG/PNG images with given weights",
                     predict_command);
}

}  // namespace densenet::cli
