#pragma once

#include <cstdint>
#include <cstdio>
#include <limits>
#include <ostream>
#include <string>

namespace densenet::train {

/// What one progress line shows, for the epoch in progress.
struct ProgressState {
  std::string label = "epoch";    // "epoch" while training; "eval" for an evaluation pass
  int64_t epoch = 1, epochs = 1;  // 1-based
  int64_t step = 0;               // batches done in this epoch
  int64_t steps = 0;              // batches in the epoch (<= 0: unknown, no bar or ETA)
  double loss = std::numeric_limits<double>::quiet_NaN();  // mean over the epoch's samples so far
  double top1 = std::numeric_limits<double>::quiet_NaN();  // accuracy in %, same reduction
  double images_per_second = 0;                            // over the epoch so far
  double data_wait_share = 0;  // fraction in [0, 1] of the epoch's time spent waiting for data
  double lr = std::numeric_limits<double>::quiet_NaN();  // NaN: not shown (evaluation)
  double elapsed_seconds = 0;                            // since the epoch started
};

/// One line, e.g. with bar_width 10:
/// `epoch 3/20 [#####.....] 512/938 loss 0.4123 top-1 85.2% 1234 img/s wait 2% lr 0.1000 ETA 1:23`
/// Without a bar (bar_width 0) the counts read `step 512/938`. The ETA is the epoch's remaining
/// steps at the epoch's mean step time so far; the line of the last step shows the epoch's time
/// (`time 2:05`) instead. NaN fields are left out.
std::string format_progress(const ProgressState& state, int bar_width);

/// `value` with `decimals` decimals where that reads well (0, or 1e-3 <= |value| < 1e4: "0.4123"),
/// else in exponent form with `exponent_decimals` ("2.50e-05", "1.00e+30"), so that a diverging
/// loss or a tiny learning rate is still one short number. NaN and inf print as "nan", "inf".
std::string format_number(double value, int decimals = 4, int exponent_decimals = 2);

/// Minutes and seconds, `1:23`, or hours too, `2:01:05`.
std::string format_duration(double seconds);

/// True when `stream` is a terminal (isatty), where a redrawn line reads well.
bool is_terminal(std::FILE* stream);

/// The per-epoch progress display. On a terminal one live line with a bar, redrawn in place
/// with '\r' (at most every `redraw_seconds` of the epoch's time, and always at its last step);
/// elsewhere (a log file, a pipe) one plain line every `plain_every` steps and at the epoch's
/// last step, so logs stay readable and small.
class ProgressDisplay {
 public:
  ProgressDisplay(std::ostream& out, bool terminal, int64_t plain_every = 100,
                  double redraw_seconds = 0.1);

  void update(const ProgressState& state);
  /// Ends the live line (a newline) so that other output starts on a line of its own; does
  /// nothing in plain mode or when no line is open. Call before printing anything else.
  void finish();

 private:
  std::ostream& out_;
  bool terminal_;
  int64_t plain_every_;
  double redraw_seconds_;
  bool line_open_ = false;
  size_t last_length_ = 0;
  double last_drawn_ = 0;  // the elapsed_seconds of the last redraw
  std::string pass_;       // label and epoch of the open line
};

}  // namespace densenet::train
