// TensorBoard event files: CRC-32C against RFC 3720's vectors, TFRecord framing against values
// from TensorBoard's own implementation, and the files TensorBoardWriter / TensorBoardLogger
// write, read back record by record. (tests/train/check_tensorboard.py reads whole runs with
// TensorBoard's reader.)

#include "densenet/train/tensorboard.h"
#include "densenet/train/tensorboard_logger.h"
#include "densenet/util/crc32c.h"
#include "event_reader.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace densenet::train {
namespace {

namespace fs = std::filesystem;
using test_support::read_events;
using test_support::ReadEvent;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("densenet_tensorboard_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A logger's options: its run directory and a per-step point every `log_interval` steps.
TensorBoardLoggerOptions options_for(const fs::path& dir, int64_t log_interval) {
  TensorBoardLoggerOptions options;
  options.run_dir = dir.string();
  options.log_interval = log_interval;
  return options;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// tag -> [(step, value)] of the scalar events.
std::map<std::string, std::vector<std::pair<int64_t, float>>> scalars(
    const std::vector<ReadEvent>& events) {
  std::map<std::string, std::vector<std::pair<int64_t, float>>> out;
  for (const auto& event : events) {
    for (const auto& [tag, value] : event.values) out[tag].emplace_back(event.step, value);
  }
  return out;
}

TEST(Crc32c, Rfc3720Vectors) {
  // RFC 3720 (iSCSI), appendix B.4.
  std::vector<unsigned char> bytes(32, 0x00);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x8A9136AAu);
  std::fill(bytes.begin(), bytes.end(), 0xFF);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) bytes[static_cast<size_t>(i)] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) bytes[static_cast<size_t>(i)] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x113FDB5Cu);
  const unsigned char read_pdu[48] = {0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                      0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(crc32c(read_pdu, sizeof(read_pdu)), 0xD9963A56u);
  // The usual check value, and a CRC continued over a second piece.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("56789", 5, crc32c("1234", 4)), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(TensorBoard, TfrecordFramingMatchesTensorBoard) {
  // Values from TensorBoard 2.21's own masked_crc32c
  // (tensorboard.compat.tensorflow_stub.pywrap_tensorflow).
  EXPECT_EQ(masked_crc32c("", 0), 0xA282EAD8u);
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
  const std::string record = tfrecord("123456789");
  const std::string expected =
      std::string("\x09\0\0\0\0\0\0\0", 8) + "\x37\xF9\x71\x39" + "123456789" + "\xE5\xB0\x8A\xC7";
  EXPECT_EQ(record, expected);
}

TEST(TensorBoard, WriterFileNameFirstEventScalarsAndPurge) {
  const fs::path dir = fresh_dir("writer");
  {
    TensorBoardWriter writer(dir.string());
    TensorBoardWriter second(dir.string());  // same second, same process: another file
    EXPECT_NE(writer.path(), second.path());
    writer.add_scalar("train/loss", 0.1, 7, 1234.5);
    writer.add_session_start(8, 1235.0);
    writer.flush();
  }
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 2u);
  // events.out.tfevents.<10-digit seconds>.<hostname>.<pid>.<counter>, as PyTorch names them.
  const std::regex name(R"(events\.out\.tfevents\.\d{10}\..+\.(\d+)\.(\d+))");
  std::smatch match;
  const std::string first = files[0].filename().string();
  ASSERT_TRUE(std::regex_match(first, match, name)) << first;
  EXPECT_EQ(std::stol(match[1]), static_cast<long>(getpid()));

  std::vector<ReadEvent> events;
  for (const auto& file : files) {
    auto read = read_events(file);
    ASSERT_FALSE(read.empty());
    EXPECT_EQ(read[0].file_version, "brain.Event:2");
    EXPECT_EQ(read[0].writer, "densenet");
    if (read.size() > 1) events = read;
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].step, 7);
  EXPECT_EQ(events[1].wall_time, 1234.5);
  ASSERT_EQ(events[1].values.size(), 1u);
  EXPECT_EQ(events[1].values[0].first, "train/loss");
  EXPECT_EQ(events[1].values[0].second, 0.1f);  // float32, as TensorBoard keeps
  EXPECT_EQ(events[2].step, 8);
  EXPECT_TRUE(events[2].session_start);
  fs::remove_all(dir);
}

StepScalars step_at(int64_t global_step, double seconds) {
  StepScalars step;
  step.global_step = global_step;
  step.loss_sum = 2.0 * static_cast<double>(global_step);  // a mean loss of global_step / 5
  step.correct = global_step;
  step.images = 10;
  step.lr = 0.1 / static_cast<double>(global_step);
  step.epoch_seconds = seconds;
  step.epoch_wait_seconds = seconds / 4;
  return step;
}

TEST(TensorBoard, LoggerPointsAreIntervalMeansAtMultiplesOfLogIntervalAndEpochEnds) {
  const fs::path dir = fresh_dir("logger");
  std::ostringstream warnings;
  {
    TensorBoardLogger logger(options_for(dir, 3), warnings);
    // Epoch 1: steps 1-4 (a point at 3, and at 4 when the epoch ends), 1 s each.
    for (int64_t g = 1; g <= 4; ++g) logger.step(step_at(g, static_cast<double>(g)));
    EpochRecord record;
    record.epoch = 1;
    record.train_loss = 0.5;
    record.eval_loss = 0.25;
    record.eval_top1 = 60;
    record.eval_top5 = 90;
    logger.epoch(record);
    // Epoch 2: step 5 (its clock restarts), then a stop that writes the open interval.
    logger.step(step_at(5, 2.0));
    logger.flush();
  }
  EXPECT_EQ(warnings.str(), "");
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  auto tags = scalars(read_events(files[0]));
  using Points = std::vector<std::pair<int64_t, float>>;
  // Losses: steps 1-3 sum 2+4+6 over 30 images; step 4 alone 8 / 10; step 5 alone 10 / 10.
  EXPECT_EQ(tags["train/loss"], (Points{{3, 0.4f}, {4, 0.8f}, {5, 1.0f}}));
  EXPECT_EQ(tags["train/top1"], (Points{{3, 20.0f}, {4, 40.0f}, {5, 50.0f}}));
  EXPECT_EQ(tags["train/images_per_second"], (Points{{3, 10.0f}, {4, 10.0f}, {5, 5.0f}}));
  EXPECT_EQ(tags["train/data_wait_share"], (Points{{3, 0.25f}, {4, 0.25f}, {5, 0.25f}}));
  EXPECT_EQ(tags["train/lr"], (Points{{3, float(0.1 / 3)}, {4, 0.025f}, {5, 0.02f}}));
  EXPECT_EQ(tags.count("train/loss_scale"), 0u);  // no loss scaling
  EXPECT_EQ(tags["epoch/train_loss"], (Points{{1, 0.5f}}));
  EXPECT_EQ(tags["epoch/test_loss"], (Points{{1, 0.25f}}));
  EXPECT_EQ(tags["epoch/test_top5"], (Points{{1, 90.0f}}));
  EXPECT_EQ(tags.count("epoch/loss_scale"), 0u);
  EXPECT_EQ(tags.count("epoch/ema_test_loss"), 0u);  // no model-ema
  fs::remove_all(dir);
}

TEST(TensorBoard, LoggerWritesTheEmaEvaluationUnderTheEvalName) {
  const fs::path dir = fresh_dir("ema");
  std::ostringstream warnings;
  {
    TensorBoardLoggerOptions options = options_for(dir, 1);
    options.eval_name = "validation";
    TensorBoardLogger logger(options, warnings);
    EpochRecord record;
    record.epoch = 1;
    record.eval_loss = 0.5;
    record.ema_eval_loss = 0.25;
    record.ema_eval_top1 = 70;
    record.ema_eval_top5 = 95;
    logger.epoch(record);
  }
  EXPECT_EQ(warnings.str(), "");
  auto tags = scalars(read_events(event_files(dir).at(0)));
  using Points = std::vector<std::pair<int64_t, float>>;
  EXPECT_EQ(tags["epoch/validation_loss"], (Points{{1, 0.5f}}));
  EXPECT_EQ(tags["epoch/ema_validation_loss"], (Points{{1, 0.25f}}));
  EXPECT_EQ(tags["epoch/ema_validation_top1"], (Points{{1, 70.0f}}));
  EXPECT_EQ(tags["epoch/ema_validation_top5"], (Points{{1, 95.0f}}));
  EXPECT_EQ(tags.count("epoch/ema_test_loss"), 0u);
  fs::remove_all(dir);
}

TEST(TensorBoard, LoggerResumeWritesSessionStartAtTheNextStep) {
  const fs::path dir = fresh_dir("resume");
  std::ostringstream warnings;
  {
    TensorBoardLogger logger(options_for(dir, 2), warnings);
    // Resumed after 6 steps, 3 s of them in the current epoch: step 7's interval is 1 s long.
    logger.resume(6, 3.0, 0.0);
    logger.step(step_at(7, 4.0));
    logger.flush();
  }
  const auto events = read_events(event_files(dir).at(0));
  ASSERT_GE(events.size(), 2u);
  EXPECT_TRUE(events[1].session_start);
  EXPECT_EQ(events[1].step, 7);
  auto tags = scalars(events);
  EXPECT_EQ(tags["train/images_per_second"], (std::vector<std::pair<int64_t, float>>{{7, 10.0f}}));
  fs::remove_all(dir);
}

TEST(TensorBoard, LoggerWarnsOnceAndStopsWritingWhenAWriteFails) {
  const fs::path dir = fresh_dir("full");
  std::ostringstream warnings;
  {
    TensorBoardLogger logger(options_for(dir, 1), warnings);
    ASSERT_TRUE(logger.writing());
    // A 4 KiB file-size limit makes the next writes fail with EFBIG, as a full disk fails
    // them with ENOSPC (SIGXFSZ ignored, so the write returns the error).
    struct rlimit before {};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &before), 0);
    struct rlimit small = before;
    small.rlim_cur = 4096;
    const auto previous_handler = signal(SIGXFSZ, SIG_IGN);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    for (int64_t g = 1; g <= 200; ++g) logger.step(step_at(g, static_cast<double>(g)));
    logger.flush();
    setrlimit(RLIMIT_FSIZE, &before);
    signal(SIGXFSZ, previous_handler);
    EXPECT_FALSE(logger.writing());
    EpochRecord record;
    record.epoch = 1;
    logger.epoch(record);  // nothing written, nothing said
  }
  const std::string text = warnings.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("warning: TensorBoard events are no longer written (training goes on; "
                      "metrics.csv has every epoch): cannot write the TensorBoard event file '"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("File too large"), std::string::npos) << text;
  fs::remove_all(dir);
}

// A full disk found only when the buffered events are written at the end (a run that a failed
// checkpoint stops, before any flush): one warning all the same, not a silently empty file.
TEST(TensorBoard, LoggerWarnsOnceWhenItsBufferedEventsCannotBeWrittenAtTheEnd) {
  const fs::path dir = fresh_dir("full_at_close");
  std::ostringstream warnings;
  struct rlimit before {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &before), 0);
  const auto previous_handler = signal(SIGXFSZ, SIG_IGN);
  {
    TensorBoardLogger logger(options_for(dir, 1), warnings);
    // A few points, well within the stdio buffer: every write succeeds.
    for (int64_t g = 1; g <= 3; ++g) logger.step(step_at(g, static_cast<double>(g)));
    // The file may no longer grow (EFBIG, as a full disk gives ENOSPC) when they go to disk.
    struct rlimit none = before;
    none.rlim_cur = 0;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &none), 0);
    EXPECT_EQ(warnings.str(), "");
  }
  setrlimit(RLIMIT_FSIZE, &before);
  signal(SIGXFSZ, previous_handler);
  const std::string text = warnings.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("warning: the last TensorBoard events were not written (metrics.csv has "
                      "every epoch): cannot write the TensorBoard event file '"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("File too large"), std::string::npos) << text;
  EXPECT_EQ(fs::file_size(event_files(dir).at(0)), 0u);  // nothing was written, as it said
  fs::remove_all(dir);
}

TEST(TensorBoard, LoggerWithoutADirectoryWarnsOnceAndTrainingGoesOn) {
  std::ostringstream warnings;
  TensorBoardLoggerOptions options;
  options.run_dir = (fs::temp_directory_path() / "densenet_tensorboard_test_missing/x").string();
  TensorBoardLogger logger(options, warnings);
  EXPECT_FALSE(logger.writing());
  logger.step(step_at(1, 1.0));
  logger.flush();
  const std::string text = warnings.str();
  EXPECT_NE(text.find("warning: no TensorBoard events for this run"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
}

}  // namespace
}  // namespace densenet::train
