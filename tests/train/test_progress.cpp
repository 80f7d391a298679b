#include "densenet/train/progress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "support/expect_error.h"

namespace densenet::train {
namespace {

ProgressState state(int64_t step, double elapsed) {
  ProgressState s;
  s.epoch = 3;
  s.epochs = 20;
  s.step = step;
  s.steps = 938;
  s.loss = 0.41234;
  s.top1 = 85.24;
  s.images_per_second = 1234.4;
  s.data_wait_share = 0.021;
  s.lr = 0.1;
  s.elapsed_seconds = elapsed;
  return s;
}

TEST(Progress, FormatsEveryNumberWithItsUnit) {
  // 512 steps in 100 s: 426 steps left at 100/512 s each = 83.2 s.
  EXPECT_EQ(format_progress(state(512, 100), 10),
            "epoch 3/20 [#####.....] 512/938 loss 0.4123 top-1 85.2% 1234 img/s wait 2% "
            "lr 0.1000 ETA 1:23");
  EXPECT_EQ(
      format_progress(state(512, 100), 0),
      "epoch 3/20 step 512/938 loss 0.4123 top-1 85.2% 1234 img/s wait 2% lr 0.1000 ETA 1:23");
  EXPECT_EQ(
      format_progress(state(0, 0), 4),
      "epoch 3/20 [....] 0/938 loss 0.4123 top-1 85.2% 1234 img/s wait 2% lr 0.1000 ETA -:--");
  ProgressState done = state(938, 3725);
  done.lr = 2.5e-5;
  EXPECT_EQ(format_progress(done, 4),
            "epoch 3/20 [####] 938/938 loss 0.4123 top-1 85.2% 1234 img/s wait 2% lr 2.50e-05 "
            "time 1:02:05");
  ProgressState eval = state(7, 2);
  eval.label = "eval";
  eval.steps = 0;
  eval.lr = eval.top1 = NAN;
  EXPECT_EQ(format_progress(eval, 10), "eval 3/20 step 7 loss 0.4123 1234 img/s wait 2%");
}

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(3599), "59:59");
  EXPECT_EQ(format_duration(90061), "25:01:01");
  EXPECT_EQ(format_duration(-1), "-:--");
  EXPECT_EQ(format_duration(NAN), "-:--");
}

TEST(Progress, PlainLinesEveryNStepsAndAtTheEnd) {
  std::ostringstream out;
  ProgressDisplay display(out, /*terminal=*/false, /*plain_every=*/400);
  for (int64_t step = 1; step <= 938; ++step) display.update(state(step, 0.1 * step));
  display.finish();  // nothing to end in plain mode
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_NE(text.find("epoch 3/20 step 400/938 "), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 3/20 step 800/938 "), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 3/20 step 938/938 loss 0.4123 top-1 85.2% 1234 img/s wait 2% "
                      "lr 0.1000 time 1:34\n"),
            std::string::npos)
      << text;
}

TEST(Progress, TerminalRedrawsOneLineInPlace) {
  std::ostringstream out;
  ProgressDisplay display(out, /*terminal=*/true, /*plain_every=*/400, /*redraw_seconds=*/1.0);
  for (int64_t step = 1; step <= 938; ++step) display.update(state(step, 0.01 * step));
  std::string text = out.str();
  // Redrawn about once a second of the epoch's 9.38 s (the first step, every 1 s, the last).
  const auto redraws = std::count(text.begin(), text.end(), '\r');
  EXPECT_GE(redraws, 9);
  EXPECT_LE(redraws, 11);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);  // the epoch's line ends at its end
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("\repoch 3/20 [##########] 938/938 "), std::string::npos);

  // A shorter line blanks out the rest of the longer one it replaces.
  out.str("");
  ProgressState wide = state(1, 0);
  wide.images_per_second = 123456789;
  display.update(wide);
  display.update(state(2, 5));
  display.finish();
  text = out.str();
  const std::string first = format_progress(wide, 10), second = format_progress(state(2, 5), 10);
  EXPECT_EQ(text,
            "\r" + first + "\r" + second + std::string(first.size() - second.size(), ' ') + "\n");

  // The evaluation of the same epoch starts a line of its own.
  out.str("");
  display.update(state(5, 1));
  ProgressState eval = state(1, 0);
  eval.label = "eval";
  display.update(eval);
  text = out.str();
  EXPECT_NE(text.find(" ETA 3:07\n\reval 3/20 "), std::string::npos) << text;
}

TEST(Progress, TerminalDetectionAndBadOptions) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  EXPECT_FALSE(is_terminal(file));
  std::fclose(file);
  EXPECT_FALSE(is_terminal(nullptr));
  std::ostringstream out;
  EXPECT_ERROR_CONTAINS(ProgressDisplay(out, false, 0), "needs N >= 1, got 0");
}

}  // namespace
}  // namespace densenet::train
