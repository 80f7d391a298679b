#include "densenet/train/progress.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace densenet::train {

namespace {

std::string printf_string(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof(text), format, value);
  return text;
}

}  // namespace

std::string format_number(double value, int decimals, int exponent_decimals) {
  char text[64];
  const double magnitude = std::abs(value);
  const bool fixed = value == 0 || (magnitude >= 1e-3 && magnitude < 1e4);
  if (!std::isfinite(value)) {
    std::snprintf(text, sizeof(text), "%g", value);
  } else if (fixed) {
    std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  } else {
    std::snprintf(text, sizeof(text), "%.*e", exponent_decimals, value);
  }
  return text;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  const int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  char text[48];
  if (h > 0) {
    std::snprintf(text, sizeof(text), "%lld:%02lld:%02lld", static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s));
  } else {
    std::snprintf(text, sizeof(text), "%lld:%02lld", static_cast<long long>(m),
                  static_cast<long long>(s));
  }
  return text;
}

std::string format_progress(const ProgressState& state, int bar_width) {
  std::string line =
      state.label + " " + std::to_string(state.epoch) + "/" + std::to_string(state.epochs);
  const bool known = state.steps > 0;
  const std::string counts =
      std::to_string(state.step) + (known ? "/" + std::to_string(state.steps) : "");
  if (bar_width > 0 && known) {
    const int64_t filled = std::clamp<int64_t>(state.step * bar_width / state.steps, 0, bar_width);
    line += " [" + std::string(static_cast<size_t>(filled), '#') +
            std::string(static_cast<size_t>(bar_width - filled), '.') + "] " + counts;
  } else {
    line += " step " + counts;
  }
  if (std::isfinite(state.loss)) line += " loss " + format_number(state.loss);
  if (std::isfinite(state.top1)) line += printf_string(" top-1 %.1f%%", state.top1);
  line += printf_string(" %.0f img/s", state.images_per_second);
  line += printf_string(" wait %.0f%%", 100 * state.data_wait_share);
  // Four decimals read well for the usual rates; small ones (a schedule's tail) need exponents.
  if (std::isfinite(state.lr)) line += " lr " + format_number(state.lr, 4);
  if (known && state.step >= state.steps) {
    line += " time " + format_duration(state.elapsed_seconds);
  } else if (known && state.step > 0) {
    const double per_step = state.elapsed_seconds / static_cast<double>(state.step);
    line += " ETA " + format_duration(per_step * static_cast<double>(state.steps - state.step));
  } else if (known) {
    line += " ETA -:--";
  }
  return line;
}

bool is_terminal(std::FILE* stream) {
  return stream != nullptr && ::isatty(::fileno(stream)) == 1;
}

ProgressDisplay::ProgressDisplay(std::ostream& out, bool terminal, int64_t plain_every,
                                 double redraw_seconds)
    : out_(out), terminal_(terminal), plain_every_(plain_every), redraw_seconds_(redraw_seconds) {
  TORCH_CHECK(plain_every >= 1, "progress: print every N steps needs N >= 1, got ", plain_every);
}

void ProgressDisplay::update(const ProgressState& state) {
  const bool last = state.steps > 0 && state.step >= state.steps;
  if (!terminal_) {
    if (last || (state.step > 0 && state.step % plain_every_ == 0)) {
      out_ << format_progress(state, 0) << '\n' << std::flush;
    }
    return;
  }
  // A new pass (another epoch, or the evaluation after training) starts its own line.
  const std::string pass = state.label + " " + std::to_string(state.epoch);
  const bool new_line = !line_open_ || pass != pass_;
  if (new_line) finish();
  if (!new_line && !last && state.elapsed_seconds - last_drawn_ < redraw_seconds_) return;
  pass_ = pass;
  last_drawn_ = state.elapsed_seconds;
  const std::string line = format_progress(state, 10);
  // Blank out the rest of a longer previous line (no terminal control codes needed).
  const size_t pad = last_length_ > line.size() ? last_length_ - line.size() : 0;
  out_ << '\r' << line << std::string(pad, ' ') << std::flush;
  last_length_ = line.size();
  line_open_ = true;
  if (last) finish();
}

void ProgressDisplay::finish() {
  if (!line_open_) return;
  out_ << '\n' << std::flush;
  line_open_ = false;
  last_length_ = 0;
}

}  // namespace densenet::train
