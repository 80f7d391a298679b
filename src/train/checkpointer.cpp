#include "densenet/train/checkpointer.h"

#include "densenet/io/atomic_file.h"
#include "densenet/io/pth_file.h"
#include "densenet/train/model_ema.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

namespace densenet::train {
namespace fs = std::filesystem;

Checkpointer::Checkpointer(std::string run_dir, int64_t save_interval, int64_t keep_checkpoints)
    : run_dir_(std::move(run_dir)),
      save_interval_(save_interval),
      keep_checkpoints_(keep_checkpoints) {
  TORCH_CHECK(keep_checkpoints_ >= 1, "keep-checkpoints must be >= 1, got ", keep_checkpoints_);
}

std::string Checkpointer::last_path() const {
  return (fs::path(run_dir_) / "last.pth").string();
}
std::string Checkpointer::best_path() const {
  return (fs::path(run_dir_) / "best.pth").string();
}
std::string Checkpointer::best_ema_path() const {
  return (fs::path(run_dir_) / "best_ema.pth").string();
}
std::string Checkpointer::numbered_path(int64_t epoch) const {
  char name[64];
  std::snprintf(name, sizeof(name), "checkpoint-%03lld.pth", static_cast<long long>(epoch));
  return (fs::path(run_dir_) / name).string();
}

std::vector<std::string> Checkpointer::numbered_checkpoints() const {
  static const std::regex pattern(R"(checkpoint-(\d+)\.pth)");
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(run_dir_, error)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, match, pattern)) {
      found.emplace_back(std::stoll(match[1].str()), entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (const auto& item : found) paths.push_back(item.second);
  return paths;
}

std::vector<std::string> Checkpointer::save(const TrainingState& state,
                                            std::optional<int64_t> completed_epoch, bool is_best,
                                            bool is_best_ema) {
  const pth::Value checkpoint = to_checkpoint(state);
  const std::string bytes = pth::serialize_checkpoint(checkpoint);
  std::vector<std::string> written;
  const auto write = [&](const std::string& path) {
    write_file_atomically(path, bytes);
    written.push_back(path);
  };
  write(last_path());
  if (!completed_epoch) return written;
  if (is_best) write(best_path());
  if (is_best_ema) {
    write_file_atomically(best_ema_path(),
                          pth::serialize_checkpoint(ema_weights_checkpoint(checkpoint)));
    written.push_back(best_ema_path());
  }
  if (save_interval_ > 0 && *completed_epoch % save_interval_ == 0) {
    write(numbered_path(*completed_epoch));
    std::vector<std::string> numbered = numbered_checkpoints();
    while (static_cast<int64_t>(numbered.size()) > keep_checkpoints_) {
      std::error_code error;
      fs::remove(numbered.front(), error);  // a file already gone is no reason to stop training
      numbered.erase(numbered.begin());
    }
  }
  return written;
}

std::string Checkpointer::resolve(const std::string& directory_or_file) {
  std::error_code error;
  const fs::path path(directory_or_file);
  if (fs::is_directory(path, error)) {
    const fs::path last = path / "last.pth";
    TORCH_CHECK_VALUE(fs::exists(last, error), "cannot resume from '", directory_or_file,
                      "': the directory has no last.pth (no checkpoint was written there)");
    return last.string();
  }
  TORCH_CHECK_VALUE(fs::exists(path, error), "cannot resume from '", directory_or_file,
                    "': no such file or directory");
  return path.string();
}

}  // namespace densenet::train
