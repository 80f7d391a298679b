#pragma once

#include "densenet/model/options.h"

#include <torch/types.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <vector>

namespace densenet::cli {

/// The model options shared by every command that builds a DenseNet: --arch and one override
/// per DenseNetOptions field. Each is unset unless given on the command line.
struct ModelArguments {
  std::string arch;  // preset name; the command's default unless given
  /// The overrides given (override_fields(): --growth-rate 24 -> "growth-rate" -> "24"), as typed.
  std::map<std::string, std::string> overrides;
  std::optional<std::string> memory;  // one mode, or a list where the command measures several
  // The original project's spellings that have no equivalent flag: given, they are rejected
  // with the right spelling (see add_model_options).
  std::optional<std::string> depth, efficient, small_inputs;
  const CLI::Option* arch_option = nullptr;  // set by add_model_options

  /// True when --arch was given on the command line.
  bool arch_given() const { return arch_option != nullptr && arch_option->count() > 0; }

  /// True when any field of the preset is overridden (--memory excluded: it changes no
  /// result). Commands use it to refuse overrides they would ignore.
  bool overrides_architecture() const;
  /// The overrides as given, e.g. "--growth-rate 24 --num-init-features 48"; "" for none.
  std::string overrides_text() const;
  /// What the output should call the network: "densenet-bc-100", or
  /// "densenet-bc-100 (overridden: --growth-rate 24)".
  std::string label() const;
};

/// How a command presents the model options.
struct ModelOptionSettings {
  /// The preset used without --arch; "" for none (then `arch_given()` tells whether one was).
  std::string default_arch = "densenet-40";
  /// --arch must be given (predict: the weights decide the architecture, no default is right).
  bool require_arch = false;
  /// Non-empty: --memory takes a comma-separated list of modes, described by this text
  /// (bench, gradcheck). Empty: --memory names one mode.
  std::string memory_list_help;
};

/// Adds --arch, the overrides (with CLI11 range checks that name the flag), --stem, --memory,
/// and the original project's spellings (--growth_rate etc.) as hidden aliases, to `command`.
/// `args` must outlive the parse.
void add_model_options(CLI::App& command, ModelArguments& args,
                       const ModelOptionSettings& settings = {});

/// Only the original project's --depth, --efficient and --small-inputs, hidden, for commands
/// that take the model from elsewhere (train, eval); refuse_original_spellings rejects them with
/// the spelling to use instead (UsageError).
void add_refused_spellings(CLI::App& command, ModelArguments& args);
void refuse_original_spellings(const ModelArguments& args);

/// The preset named by `args.arch` with every override applied, validated. A BC preset whose
/// growth rate is overridden gets the paper's 2k stem channels unless --num-init-features is
/// given (Huang et al. 2017, section 3: "the initial convolution layer comprises 2k
/// convolutions"). --memory is applied when `read_memory` (a single mode). Throws UsageError
/// for an invalid combination, naming the flags.
DenseNetOptions model_options_from(const ModelArguments& args, bool read_memory = true);

/// A CLI11 check for an integer in [low, high] whose message names what was given:
/// "--topk: expects an integer from 1 to 16777216, got 'cat.jpg'".
CLI::Validator integer_in(int64_t low, int64_t high);

/// A CLI11 check for an integer >= low ("--batch: expects an integer, got 'abc'" / "--batch:
/// must be at least 1, got 0"): CLI::PositiveNumber and CLI::Range say "Value abc not in range"
/// for text that is no number at all.
CLI::Validator integer_at_least(int64_t low);

/// The same for a real number >= low ("expects a number, got 'abc'").
CLI::Validator number_at_least(double low);

/// "naive,efficient" -> the modes; throws UsageError naming a bad one.
std::vector<MemoryMode> memory_modes_from(const std::string& text);

/// --device: "cpu", "cuda" or "cuda:N", as train and eval take it. Throws UsageError for another
/// name (exit 2); c10::Error when this machine has no such CUDA device (exit 1, as train and
/// eval: the command line is right, the machine lacks the device).
torch::Device device_from(const std::string& name);

/// "naive,efficient" -> the modes; throws c10::Error naming a bad one.
std::vector<MemoryMode> parse_memory_modes(const std::string& text);

}  // namespace densenet::cli
