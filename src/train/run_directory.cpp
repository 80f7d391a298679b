#include "train/run_directory.h"

#include "densenet/io/atomic_file.h"
#include "densenet/train/plan.h"

#include <c10/util/Exception.h>

#include <ctime>
#include <filesystem>
#include <regex>

namespace densenet::train {
namespace fs = std::filesystem;

namespace detail {

std::string default_run_dir(const TrainConfig& config) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  return "runs/" + config.dataset + "-" + config.arch + "-" + stamp;
}

bool is_resumed_run(const std::string& dir, const std::string& resume_path) {
  if (resume_path.empty()) return false;
  const fs::path parent = fs::path(resume_path).parent_path();
  std::error_code error;
  return fs::equivalent(parent.empty() ? fs::path(".") : parent, dir, error);
}

void prepare_run_dir(const std::string& dir, const std::string& resume_path) {
  std::error_code error;
  if (fs::exists(dir, error) && !is_resumed_run(dir, resume_path)) {
    // --force: the previous run's outputs go, so that none of them (a numbered checkpoint, a
    // best.pth, or a last.pth that --resume would pick up if the new run stopped before its
    // first checkpoint) passes for the new run's. Other files stay.
    static const std::regex run_file(
        R"(last\.pth|best\.pth|best_ema\.pth|checkpoint-\d+\.pth|metrics\.csv|metrics\.jsonl|curves\.png)"
        R"(|events\.out\.tfevents\..+)");
    std::vector<fs::path> previous;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
      if (std::regex_match(entry.path().filename().string(), run_file)) {
        previous.push_back(entry.path());
      }
    }
    for (const fs::path& path : previous) {
      fs::remove(path, error);
      TORCH_CHECK(!error, "--force: cannot remove '", path.string(),
                  "' of the previous run: ", error.message());
    }
  }
  fs::create_directories(dir, error);
  TORCH_CHECK(!error, "cannot create output-dir '", dir, "': ", error.message());
}

void carry_best_checkpoint(const std::string& dir, const std::string& resume_path) {
  if (resume_path.empty() || is_resumed_run(dir, resume_path)) return;
  for (const char* best : {"best.pth", "best_ema.pth"}) {
    const fs::path before = fs::path(resume_path).parent_path() / best;
    const fs::path here = fs::path(dir) / best;
    std::error_code error;
    if (fs::exists(before, error) && !fs::exists(here, error)) {
      write_file_atomically(here.string(), read_file(before.string()));
    }
  }
}

void write_run_record(const std::string& dir, const TrainConfig& config,
                      const std::vector<std::string>& classes) {
  TrainConfig recorded = config;
  recorded.force = false;
  recorded.resume.clear();
  write_file_atomically((fs::path(dir) / "config.yaml").string(), config_to_yaml(recorded));
  std::string text;
  for (const auto& name : classes) text += name + "\n";
  write_file_atomically((fs::path(dir) / "classes.txt").string(), text);
}

}  // namespace detail

void check_run_dir(const std::string& dir, const TrainConfig& config,
                   const std::string& resume_path) {
  std::error_code error;
  if (!fs::exists(dir, error)) return;
  TORCH_CHECK_VALUE(fs::is_directory(dir, error), "output-dir '", dir,
                    "' exists and is not a directory");
  // A run directory worth protecting holds a checkpoint. Metrics without one (a run that failed
  // before its first checkpoint) are replaced by the next run there.
  const bool holds_run = fs::exists(fs::path(dir) / "last.pth", error);
  TORCH_CHECK_VALUE(!holds_run || detail::is_resumed_run(dir, resume_path) || config.force,
                    "output-dir '", dir, "' already holds a run: continue it with --resume ", dir,
                    ", or overwrite it with --force, or choose another --output-dir");
}

}  // namespace densenet::train
