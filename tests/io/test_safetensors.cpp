#include "densenet/io/atomic_file.h"
#include "densenet/io/safetensors.h"

#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

namespace densenet {
namespace {

std::string with_header(const std::string& json, const std::string& data = "") {
  const uint64_t length = json.size();
  std::string out(reinterpret_cast<const char*>(&length), 8);
  return out + json + data;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("densenet_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TEST(Safetensors, RoundTripsEveryDtype) {
  StateDict tensors;
  tensors.insert("f64", torch::randn({2, 3}, torch::kFloat64));
  tensors.insert("f32", torch::randn({4, 1, 2}));
  tensors.insert("f16", torch::randn({3}).to(torch::kFloat16));
  tensors.insert("bf16", torch::randn({3}).to(torch::kBFloat16));
  tensors.insert("i64", torch::arange(5, torch::kInt64));
  tensors.insert("i32", torch::arange(5, torch::kInt32));
  tensors.insert("i16", torch::arange(5, torch::kInt16));
  tensors.insert("i8", torch::arange(-2, 3, torch::kInt8));
  tensors.insert("u8", torch::arange(5, torch::kUInt8));
  tensors.insert("bool", torch::tensor({true, false, true}));
  tensors.insert("scalar", torch::tensor(3.5));
  tensors.insert("empty", torch::zeros({0, 4}));
  tensors.insert("strided", torch::randn({4, 6}).t());  // non-contiguous input
  const TensorFile file =
      parse_safetensors(serialize_safetensors(tensors, {{"note", "hi"}}), "mem");
  EXPECT_EQ(file.metadata.at("note"), "hi");
  ASSERT_EQ(file.tensors.size(), tensors.size());
  size_t i = 0;
  for (const auto& item : tensors) {
    EXPECT_EQ(file.tensors.keys()[i++], item.key()) << "order is kept";
    EXPECT_TRUE(testing::tensors_identical(item.key(), file.tensors[item.key()], item.value()));
  }
}

TEST(Safetensors, DataIsEightByteAligned) {
  StateDict tensors;
  tensors.insert("x", torch::ones({1}));
  const std::string bytes = serialize_safetensors(tensors);
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  EXPECT_EQ(length % 8, 0u);
}

TEST(Safetensors, FileRoundTripIsAtomic) {
  const std::string path = temp_path("roundtrip.safetensors");
  StateDict tensors;
  tensors.insert("w", torch::randn({3, 3}));
  write_safetensors(path, tensors);
  write_safetensors(path, tensors);  // replacing an existing file
  EXPECT_TRUE(testing::tensors_identical("w", read_safetensors(path).tensors["w"], tensors["w"]));
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
    EXPECT_EQ(entry.path().string().find(path + ".tmp"), std::string::npos)
        << "temporary left behind";
  }
  std::remove(path.c_str());
}

TEST(Safetensors, MissingFileOrDirectory) {
  EXPECT_ERROR_CONTAINS(read_safetensors("/nonexistent/x.safetensors"),
                        "cannot read '/nonexistent/x.safetensors': No such file or directory");
  EXPECT_ERROR_CONTAINS(read_safetensors("/tmp"), "it is a directory");
  StateDict tensors;
  EXPECT_ERROR_CONTAINS(write_safetensors("/nonexistent/dir/x.safetensors", tensors),
                        "cannot write '/nonexistent/dir/x.safetensors'");
}

TEST(Safetensors, BadFilesAreClearErrors) {
  EXPECT_ERROR_CONTAINS(parse_safetensors("", "f"), "f: not a safetensors file (0 bytes");
  EXPECT_ERROR_CONTAINS(parse_safetensors("abc", "f"), "not a safetensors file");
  EXPECT_ERROR_CONTAINS(parse_safetensors(std::string(8, '\xff') + "{}", "f"),
                        "does not fit the file");
  EXPECT_ERROR_CONTAINS(parse_safetensors(with_header("{not json"), "f"),
                        "header is not valid JSON");
  EXPECT_ERROR_CONTAINS(parse_safetensors(with_header("[1,2]"), "f"),
                        "header is not a JSON object");
  EXPECT_ERROR_CONTAINS(
      parse_safetensors(
          with_header(R"({"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "a"), "f"),
      "unsupported dtype 'F8'");
  EXPECT_ERROR_CONTAINS(
      parse_safetensors(
          with_header(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"), "f"),
      "not a non-negative integer");
  // The header lies: 2x2 float32 needs 16 bytes but the offsets span 8.
  EXPECT_ERROR_CONTAINS(
      parse_safetensors(with_header(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})",
                                    std::string(16, '\0')),
                        "f"),
      "tensor 'x': shape [2,2] of F32 needs 16 bytes but data_offsets span 8");
  // Truncated data section.
  EXPECT_ERROR_CONTAINS(
      parse_safetensors(with_header(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                    std::string(10, '\0')),
                        "f"),
      "lie outside the 10 bytes of tensor data (truncated file?)");
  EXPECT_ERROR_CONTAINS(
      parse_safetensors(
          with_header(
              R"({"x":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}})"),
          "f"),
      "tensor size overflows");
  EXPECT_ERROR_CONTAINS(parse_safetensors(with_header(R"({"x":{"dtype":"F32","shape":[1]}})"), "f"),
                        "no two-element 'data_offsets'");
  EXPECT_ERROR_CONTAINS(parse_safetensors(with_header(R"({"x":3})"), "f"),
                        "header entry is not an object");
  EXPECT_ERROR_CONTAINS(parse_safetensors(with_header(R"({"__metadata__":{"a":1}})"), "f"),
                        "__metadata__ value of 'a' is not a string");
  EXPECT_ERROR_CONTAINS(
      parse_safetensors(
          with_header(R"({"x":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", "\x07"), "f"),
      "BOOL data holds byte 7");
}

TEST(Safetensors, EveryTruncationOfAValidFileIsAnErrorNotACrash) {
  StateDict tensors;
  tensors.insert("a", torch::randn({3, 2}));
  tensors.insert("b", torch::arange(4));
  const std::string bytes = serialize_safetensors(tensors, {{"k", "v"}});
  for (size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_THROW(parse_safetensors(std::string_view(bytes).substr(0, size), "f"), c10::Error)
        << "prefix of " << size << " bytes";
  }
}

}  // namespace
}  // namespace densenet
