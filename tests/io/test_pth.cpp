// The .pth reader and writer: round trips, hostile and corrupted input, key layouts, and the
// acceptance check that torchvision-style legacy weights reproduce PyTorch's logits.

#include "densenet/io/atomic_file.h"
#include "densenet/io/pth_file.h"
#include "densenet/io/safetensors.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"
#include "densenet/model/presets.h"
#include "io/pth/unpickler.h"
#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace densenet {
namespace {

using pth::Value;
using namespace std::string_literals;

std::string checkpoint_dir() {
  return DENSENET_CHECKPOINT_DIR;
}

torch::Tensor bits_of(const torch::Tensor& tensor) {
  torch::Tensor contiguous = tensor.contiguous();
  if (contiguous.is_complex()) contiguous = torch::view_as_real(contiguous);
  switch (contiguous.scalar_type()) {
    case torch::kFloat32:
      return contiguous.view(torch::kInt32);
    case torch::kFloat64:
      return contiguous.view(torch::kInt64);
    case torch::kFloat16:
    case torch::kBFloat16:
      return contiguous.view(torch::kInt16);
    default:
      return contiguous;
  }
}

// Deep equality: kinds, scalars, order of keys, tensors bit for bit with the same layout.
void expect_same(const Value& a, const Value& b, const std::string& where) {
  ASSERT_EQ(a.type_name(), b.type_name()) << where;
  switch (a.kind()) {
    case Value::Kind::None:
      return;
    case Value::Kind::Bool:
      EXPECT_EQ(a.as_bool(), b.as_bool()) << where;
      return;
    case Value::Kind::Int:
      ASSERT_EQ(a.is_big_integer(), b.is_big_integer()) << where;
      if (a.is_big_integer()) {
        EXPECT_EQ(a.big_integer_bytes(), b.big_integer_bytes()) << where;
      } else {
        EXPECT_EQ(a.as_int(), b.as_int()) << where;
      }
      return;
    case Value::Kind::Float:
      EXPECT_EQ(bits_of(torch::tensor(a.as_float(), torch::kFloat64)).item<int64_t>(),
                bits_of(torch::tensor(b.as_float(), torch::kFloat64)).item<int64_t>())
          << where;
      return;
    case Value::Kind::String:
    case Value::Kind::Bytes:
      EXPECT_EQ(a.as_string(), b.as_string()) << where;
      return;
    case Value::Kind::Tuple:
    case Value::Kind::List:
    case Value::Kind::Set:
      ASSERT_EQ(a.elements().size(), b.elements().size()) << where;
      for (size_t i = 0; i < a.elements().size(); ++i) {
        expect_same(a.elements()[i], b.elements()[i], where + "." + std::to_string(i));
      }
      return;
    case Value::Kind::Dict:
      ASSERT_EQ(a.items().size(), b.items().size()) << where;
      for (size_t i = 0; i < a.items().size(); ++i) {
        expect_same(a.items()[i].first, b.items()[i].first, where + ".key");
        expect_same(a.items()[i].second, b.items()[i].second,
                    where + "[" + std::to_string(i) + "]");
      }
      expect_same(a.attributes(), b.attributes(), where + ".attributes");
      return;
    case Value::Kind::Tensor: {
      const torch::Tensor& x = a.as_tensor();
      const torch::Tensor& y = b.as_tensor();
      EXPECT_EQ(x.scalar_type(), y.scalar_type()) << where;
      EXPECT_EQ(x.sizes(), y.sizes()) << where;
      EXPECT_EQ(x.strides(), y.strides()) << where;
      EXPECT_EQ(x.storage_offset(), y.storage_offset()) << where;
      EXPECT_EQ(x.requires_grad(), y.requires_grad()) << where;
      EXPECT_TRUE(torch::equal(bits_of(x), bits_of(y))) << where;
      return;
    }
    default:
      FAIL() << where << ": unexpected kind";
  }
}

Value str(const std::string& text) {
  return Value::string(text);
}

// Every kind a checkpoint can hold, with views sharing one storage.
Value sample_checkpoint() {
  torch::manual_seed(7);
  const torch::Tensor base = torch::randn({5, 6});
  Value tensors = Value::dict({}, /*ordered=*/true);
  for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kFloat16, torch::kBFloat16,
                           torch::kInt64, torch::kInt32, torch::kInt16, torch::kInt8, torch::kUInt8,
                           torch::kBool, torch::kComplexFloat, torch::kComplexDouble}) {
    tensors.set_item(str(c10::toString(dtype)), Value::tensor((base * 40).to(dtype)));
  }
  tensors.set_item(str("scalar"), Value::tensor(torch::tensor(1.5)));
  tensors.set_item(str("empty"), Value::tensor(torch::zeros({0, 3})));
  tensors.attributes() = Value::dict({{str("_metadata"), Value::dict({}, true)}});
  Value views = Value::dict();
  views.set_item(str("base"), Value::tensor(base));
  views.set_item(str("slice"), Value::tensor(base.slice(0, 1, 4).slice(1, 0, 6, 2)));
  views.set_item(str("transposed"), Value::tensor(base.t()));
  views.set_item(str("expanded"), Value::tensor(base[2].expand({4, 6})));
  Value nested = Value::dict();
  nested.set_item(str("list"), Value::list({Value::integer(-5), Value::integer(int64_t{1} << 40),
                                            Value::integer(INT64_MIN), Value::real(-0.0),
                                            Value::boolean(true), Value()}));
  nested.set_item(str("tuple"), Value::tuple({str("a"), str("b"), str("c"), str("d")}));
  nested.set_item(str("bytes"), Value::bytes(std::string("\x00\xff\x80z", 4)));
  nested.set_item(str("text"), str("h\xc3\xa9llo"));
  nested.set_item(str("set"), Value::set({Value::integer(1), Value::integer(2)}));
  nested.set_item(str("big"),
                  Value::big_integer(std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09", 9)));
  nested.set_item(Value::integer(3), str("int key"));
  return Value::dict({{str("state_dict"), tensors},
                      {str("views"), views},
                      {str("nested"), nested},
                      {str("epoch"), Value::integer(12)}});
}

TEST(PthFile, RoundTripKeepsEveryKindDtypeLayoutAndSharing) {
  const Value original = sample_checkpoint();
  for (const uint64_t threshold : {uint64_t{0xFFFFFFFFu}, uint64_t{0}}) {
    const std::string bytes = pth::serialize_checkpoint(original, threshold);
    const pth::Checkpoint loaded = pth::parse_checkpoint(bytes, "memory");
    EXPECT_EQ(loaded.format, pth::Format::Zip);
    expect_same(original, loaded.root, "root");
    const Value& views = *loaded.root.find("views");
    EXPECT_EQ(views.find("base")->as_tensor().storage().data(),
              views.find("expanded")->as_tensor().storage().data())
        << "views must share their storage after loading";
    EXPECT_EQ(views.find("base")->as_tensor().storage().data(),
              views.find("slice")->as_tensor().storage().data());
  }
}

TEST(PthFile, ReadsPythonZipAndLegacyFilesAlike) {
  const pth::Checkpoint zip = pth::read_checkpoint(checkpoint_dir() + "/generic_zip.pth");
  const pth::Checkpoint legacy = pth::read_checkpoint(checkpoint_dir() + "/generic_legacy.pth");
  EXPECT_EQ(zip.format, pth::Format::Zip);
  EXPECT_EQ(legacy.format, pth::Format::Legacy);
  expect_same(zip.root, legacy.root, "root");
  const Value& views = *zip.root.find("views");
  const torch::Tensor base = views.find("base")->as_tensor();
  const torch::Tensor strided = views.find("strided")->as_tensor();  // base[1:, ::3]
  EXPECT_EQ(strided.strides(), (std::vector<int64_t>{8, 3}));
  EXPECT_EQ(strided.storage_offset(), 8);
  EXPECT_TRUE(torch::equal(strided, base.slice(0, 1).slice(1, 0, 8, 3)));
  EXPECT_TRUE(zip.root.find("parameter")->as_tensor().requires_grad());
  const Value& list = *zip.root.find("nested")->find("list");
  EXPECT_EQ(list.elements()[2].as_int(), int64_t{1} << 40);
  EXPECT_EQ(list.elements()[3].as_int(), -(int64_t{1} << 40));
  EXPECT_TRUE(list.elements()[4].is_big_integer());  // 2**70
  EXPECT_EQ(zip.root.find("nested")->find("bytes")->as_string(), std::string("\x00\xff"
                                                                             "binary",
                                                                             8));
  EXPECT_EQ(zip.root.find("nested")->find("text")->as_string(), "h\xc3\xa9llo \xe2\x9c\x93");
}

// Every prefix of a valid file is an error, never a crash or a partial result.
void expect_every_truncation_fails(const std::string& bytes, const std::string& name) {
  for (size_t length = 0; length < bytes.size(); ++length) {
    try {
      pth::parse_checkpoint(std::string_view(bytes).substr(0, length), name);
      ADD_FAILURE() << name << " truncated to " << length << " bytes loaded";
    } catch (const c10::Error&) {
    }
  }
}

TEST(PthFile, EveryTruncationIsAnError) {
  expect_every_truncation_fails(pth::serialize_checkpoint(sample_checkpoint()), "written");
  expect_every_truncation_fails(read_file(checkpoint_dir() + "/generic_legacy.pth"), "legacy");
  expect_every_truncation_fails(read_file(checkpoint_dir() + "/generic_zip.pth"), "zip");
}

// Each byte inverted in turn: the reader either loads something or throws c10::Error.
TEST(PthFile, CorruptedBytesNeverCrash) {
  int errors = 0;
  for (const std::string name : {"generic_legacy.pth", "generic_zip.pth"}) {
    std::string bytes = read_file(checkpoint_dir() + "/" + name);
    for (size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<char>(~bytes[i]);
      try {
        pth::parse_checkpoint(bytes, name);
      } catch (const c10::Error&) {
        ++errors;
      }
      bytes[i] = static_cast<char>(~bytes[i]);
    }
  }
  EXPECT_GT(errors, 1000);  // the zip's CRC-32 alone catches every flipped data byte
}

TEST(PthFile, ZipCorruptionIsNamed) {
  std::string bytes = pth::serialize_checkpoint(sample_checkpoint());
  bytes[200] = static_cast<char>(bytes[200] ^ 1);  // inside data.pkl
  EXPECT_ERROR_CONTAINS(pth::parse_checkpoint(bytes, "f.pth"), "fails its CRC-32 check");
  EXPECT_ERROR_CONTAINS(pth::parse_checkpoint("PK\x03\x04 and nothing else at all", "f.pth"),
                        "no end-of-central-directory record");
}

TEST(PthFile, ForeignFilesAreNamed) {
  const std::string dir = checkpoint_dir() + "/";
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "empty.pth"), "the file is empty");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "text.pth"), "not a PyTorch checkpoint");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "torchscript.pt"), "TorchScript archive");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "compressed.pth"), "is compressed");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "does-not-exist.pth"), "cannot read");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir), "is a directory");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "malicious_system_zip.pth"),
                        "refers to the Python global 'posix.system'");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "malicious_eval_legacy.pth"),
                        "refers to the Python global 'builtins.eval'");
  EXPECT_ERROR_CONTAINS(pth::read_checkpoint(dir + "densenet121_io.safetensors"),
                        "looks like a safetensors file");
}

// Hand-written pickles that a hostile file could contain.
Value unpickle(const std::string& bytes, pth::StorageLoader loader = nullptr) {
  pth::Unpickler unpickler(bytes, "crafted.pkl", std::move(loader));
  return unpickler.load();
}

std::string le32(uint32_t value) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  return out;
}

std::string unicode(const std::string& text) {
  return "X" + le32(text.size()) + text;
}

// _rebuild_tensor_v2 over a 4-element float storage with the given size and stride tuples.
std::string tensor_pickle(const std::string& size, const std::string& stride) {
  return "\x80\x02"
         "ctorch._utils\n_rebuild_tensor_v2\n(("s +
         unicode("storage") + "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") +
         "K\x04tQK\x00"s + size + stride +
         "\x89"
         "ccollections\nOrderedDict\n)RtR.";
}

TEST(Unpickler, RefusesWhatAWeightsFileNeverHolds) {
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02"
                                 "cos\nsystem\n."s),
                        "Python global 'os.system'");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02"
                                 "c__builtin__\neval\n."s),
                        "Python global 'builtins.eval'");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x04"s + std::string("\x8c\x02os\x8c\x06system\x93.")),
                        "Python global 'os.system'");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02(ios\nsystem\n."s), "opcode INST");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02"
                                 "ccollections\nOrderedDict\n)\x81."s),
                        "NEWOBJ of collections.OrderedDict");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02"
                                 "ctorch\nFloatStorage\n)R."s),
                        "cannot be called here");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02"
                                 "ccollections\nOrderedDict\n."s),
                        "holds the class or function 'collections.OrderedDict'");
  EXPECT_ERROR_CONTAINS(unpickle(tensor_pickle("K\x01\x85", "K\x01\x85")),
                        "a tensor where none may be");
}

// Pickle protocols 0 and 1 write ints beyond 64 bits as decimal text (the legacy format's magic
// number among them); they load as the bytes LONG1 holds (pickle.dumps(v, 2), Python 3.11).
TEST(Unpickler, TextLongsBeyondSixtyFourBits) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"119547037146038801333356", "6cfc9c46f9206aa85019"},
      {"-1180591620717411303424", "0000000000000000c0"},
      {"9223372036854775808", "000000000000008000"},
      {"-9223372036854775809", "ffffffffffffff7fff"}};
  for (const auto& [text, hex] : cases) {
    const Value value = unpickle("L" + text + "L\n.");
    ASSERT_TRUE(value.is_big_integer()) << text;
    std::string bytes;
    for (size_t i = 0; i < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    EXPECT_EQ(value.big_integer_bytes(), bytes) << text;
  }
  EXPECT_EQ(unpickle("L-42L\n."s).as_int(), -42);
  EXPECT_ERROR_CONTAINS(unpickle("L12x45678901234567890L\n."s), "malformed text integer");
}

// Other classes become opaque names, never run: the state beside the weights of a training
// script (argparse.Namespace via NEWOBJ + BUILD, numpy scalars via REDUCE, a defaultdict's
// SETITEMS) loads, and the tensors next to it are kept.
TEST(Unpickler, OtherObjectsAreOpaqueNames) {
  const Value root = unpickle(
      "\x80\x02}("s + unicode("args") + "cargparse\nNamespace\n)\x81}" + unicode("lr") +
      "G?\xb9\x99\x99\x99\x99\x99\x9a" + "sb" + unicode("best") +
      "cnumpy.core.multiarray\nscalar\n(K\x01tR" + unicode("counts") +
      "ccollections\ndefaultdict\n(cbuiltins\nlist\ntR(K\x01K\x02u" + unicode("epoch") + "K\x07u.");
  ASSERT_TRUE(root.is(Value::Kind::Dict));
  EXPECT_EQ(root.find("args")->type_name(), "argparse.Namespace");
  EXPECT_TRUE(root.find("args")->is(Value::Kind::Opaque));
  EXPECT_EQ(root.find("best")->type_name(), "numpy.core.multiarray.scalar");
  EXPECT_EQ(root.find("counts")->type_name(), "collections.defaultdict");
  EXPECT_EQ(root.find("epoch")->as_int(), 7);
  EXPECT_ERROR_CONTAINS(pth::serialize_checkpoint(root),
                        "cannot write the Python object 'argparse.Namespace' back");
}

TEST(Unpickler, RejectsMalformedStreams) {
  EXPECT_ERROR_CONTAINS(unpickle(""s), "ends unexpectedly");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02"
                                 "a."s),
                        "stack underflow");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02."s), "STOP with 0 values");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02h\x05."s), "memo entry 5 was never stored");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02X\xff\xff\xff\xff"s), "the file is truncated");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02\xfe."s), "unknown pickle opcode 0xfe");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02u."s), "no MARK");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02X\x02\x00\x00\x00\xc3\x28."s), "not valid UTF-8");
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02K\x01h\x00."s), "never stored");
}

TEST(Unpickler, RejectsCyclesAndDeepNestingWithoutOverflowingTheStack) {
  // l = []; l.append(l)
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02]q\x00h\x00"
                                 "a."s),
                        "reference cycle");
  // d = {}; d['self'] = d
  EXPECT_ERROR_CONTAINS(unpickle("\x80\x02}q\x00"s + unicode("self") + "h\x00s."s),
                        "reference cycle");
  // A million nested lists: refused, and destroyed without recursion.
  const size_t depth = 1000000;
  const std::string deep = "\x80\x02" + std::string(depth, ']') + std::string(depth - 1, 'a') + ".";
  EXPECT_ERROR_CONTAINS(unpickle(deep), "nest deeper than 1000");
  // Shared (not cyclic) references are fine: [x, x] where x = [1].
  const Value shared = unpickle(
      "\x80\x02](]K\x01"
      "aq\x00h\x00"
      "e."s);
  EXPECT_EQ(shared.elements().size(), 2u);
  EXPECT_EQ(shared.elements()[0].identity(), shared.elements()[1].identity());
}

TEST(Unpickler, TensorViewsMustLieInsideTheirStorage) {
  pth::StorageLoader four = [](const std::string&, torch::Dtype dtype, int64_t numel) {
    EXPECT_EQ(numel, 4);
    return torch::arange(4, torch::TensorOptions().dtype(dtype));
  };
  const Value fine = unpickle(tensor_pickle("K\x02K\x02\x86", "K\x01K\x02\x86"), four);
  EXPECT_TRUE(torch::equal(fine.as_tensor(), torch::tensor({{0.f, 1.f}, {2.f, 3.f}}).t()));
  EXPECT_ERROR_CONTAINS(unpickle(tensor_pickle("K\x05\x85", "K\x01\x85"), four),
                        "reaches past its storage of 4 elements");
  EXPECT_ERROR_CONTAINS(unpickle(tensor_pickle("K\x02\x85", "K\x04\x85"), four),
                        "reaches past its storage");
  // size 2**62 with stride 2**62: the extent overflows int64.
  const std::string huge =
      std::string("\x8a\x08", 2) + std::string("\x00\x00\x00\x00\x00\x00\x00\x40", 8);
  EXPECT_ERROR_CONTAINS(unpickle(tensor_pickle(huge + "\x85", huge + "\x85"), four), "overflow");
  EXPECT_ERROR_CONTAINS(unpickle(tensor_pickle("K\x01K\x01\x86", "K\x01\x85"), four),
                        "size and stride differ in length");
  EXPECT_ERROR_CONTAINS(unpickle(tensor_pickle("J\xff\xff\xff\xff\x85", "K\x01\x85"), four),
                        "non-negative int");
}

// A legacy file whose storage claims far more elements than the file holds must not allocate.
TEST(PthFile, LegacyStorageLargerThanTheFileIsRefusedBeforeAllocating) {
  const std::string magic =
      std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  const std::string version = "\x80\x02M\xe9\x03.";
  const std::string system = "\x80\x02}.";
  std::string main = tensor_pickle("K\x01\x85", "K\x01\x85");
  const std::string four = "K\x04t";
  const std::string claim =
      std::string("\x8a\x08", 2) + std::string("\x00\x00\x00\x00\x00\x10\x00\x00", 8) + "t";
  main.replace(main.find(four), four.size(), claim);  // 2**44 elements = 64 TiB
  EXPECT_ERROR_CONTAINS(pth::parse_checkpoint(magic + version + system + main, "huge.pth"),
                        "more than the file holds");
}

TEST(KeyMapping, TorchvisionLegacyKeysAndMissingCountersAreFixed) {
  StateDict legacy;
  legacy.insert("features.denseblock1.denselayer1.norm.1.weight", torch::ones({2}));
  legacy.insert("features.denseblock1.denselayer1.norm.1.running_mean", torch::zeros({2}));
  legacy.insert("features.denseblock1.denselayer1.norm.1.running_var", torch::ones({2}));
  legacy.insert("features.denseblock1.denselayer1.conv.2.weight", torch::ones({1, 2, 3, 3}));
  legacy.insert("features.norm5.running_mean", torch::zeros({2}));
  legacy.insert("features.norm5.running_var", torch::ones({2}));
  legacy.insert("classifier.weight", torch::ones({3, 2}));
  const StateDict fixed = to_torchvision_keys(legacy);
  EXPECT_EQ(fixed.keys(), (std::vector<std::string>{
                              "features.denseblock1.denselayer1.norm1.weight",
                              "features.denseblock1.denselayer1.norm1.running_mean",
                              "features.denseblock1.denselayer1.norm1.running_var",
                              "features.denseblock1.denselayer1.norm1.num_batches_tracked",
                              "features.denseblock1.denselayer1.conv2.weight",
                              "features.norm5.running_mean",
                              "features.norm5.running_var",
                              "features.norm5.num_batches_tracked",
                              "classifier.weight",
                          }));
  const torch::Tensor counter = fixed["features.norm5.num_batches_tracked"];
  EXPECT_EQ(counter.scalar_type(), torch::kInt64);
  EXPECT_EQ(counter.dim(), 0);
  EXPECT_EQ(counter.item<int64_t>(), 0);
  EXPECT_TRUE(fixed["classifier.weight"].is_same(legacy["classifier.weight"]));
}

TEST(KeyMapping, EfficientLayoutBothWaysAndDataParallelPrefix) {
  StateDict efficient;
  efficient.insert("module.features.denseblock2.denselayer3.bottleneck.norm_weight",
                   torch::ones({2}));
  efficient.insert("module.features.denseblock2.denselayer3.bottleneck.norm_running_mean",
                   torch::zeros({2}));
  efficient.insert("module.features.denseblock2.denselayer3.bottleneck.norm_running_var",
                   torch::ones({2}));
  efficient.insert("module.features.denseblock2.denselayer3.bottleneck.conv_weight",
                   torch::ones({4, 2, 1, 1}));
  efficient.insert("module.features.denseblock2.denselayer3.norm2.weight", torch::ones({4}));
  const StateDict torchvision = to_torchvision_keys(efficient);
  EXPECT_EQ(torchvision.keys(), (std::vector<std::string>{
                                    "features.denseblock2.denselayer3.norm1.weight",
                                    "features.denseblock2.denselayer3.norm1.running_mean",
                                    "features.denseblock2.denselayer3.norm1.running_var",
                                    "features.denseblock2.denselayer3.norm1.num_batches_tracked",
                                    "features.denseblock2.denselayer3.conv1.weight",
                                    "features.denseblock2.denselayer3.norm2.weight",
                                }))
      << "";
  EXPECT_EQ(to_efficient_pytorch_keys(torchvision).keys(),
            (std::vector<std::string>{
                "features.denseblock2.denselayer3.bottleneck.norm_weight",
                "features.denseblock2.denselayer3.bottleneck.norm_running_mean",
                "features.denseblock2.denselayer3.bottleneck.norm_running_var",
                "features.denseblock2.denselayer3.bottleneck.norm_num_batches_tracked",
                "features.denseblock2.denselayer3.bottleneck.conv_weight",
                "features.denseblock2.denselayer3.norm2.weight",
            }));
  StateDict mixed;
  mixed.insert("features.denseblock1.denselayer1.norm.1.weight", torch::ones({2}));
  mixed.insert("features.denseblock1.denselayer1.norm1.weight", torch::ones({2}));
  EXPECT_ERROR_CONTAINS(to_torchvision_keys(mixed), "mixes key layouts");
  EXPECT_ERROR_CONTAINS(parse_key_layout("keras"), "unknown key layout 'keras'");
}

// The final batch norm of the three layouts: torchvision's norm5, gpleiss's norm_final,
// wandering007's norm{blocks+1} (here three blocks: norm4), each read and written.
TEST(KeyMapping, FinalNormOfEachLayoutBothWays) {
  const auto three_blocks = [](const std::string& final_norm) {
    StateDict state;
    state.insert("features.conv0.weight", torch::ones({2, 3, 3, 3}));
    state.insert("features.denseblock3.denselayer1.norm1.weight", torch::ones({2}));
    state.insert("features." + final_norm + ".weight", torch::ones({2}));
    state.insert("features." + final_norm + ".bias", torch::zeros({2}));
    state.insert("classifier.weight", torch::ones({3, 2}));
    return state;
  };
  const StateDict torchvision = three_blocks("norm5");
  for (const std::string final_norm : {"norm5", "norm_final", "norm4"}) {
    EXPECT_EQ(to_torchvision_keys(three_blocks(final_norm)).keys(), torchvision.keys())
        << final_norm;
  }
  EXPECT_EQ(from_torchvision_keys(torchvision, KeyLayout::Gpleiss).keys(),
            three_blocks("norm_final").keys());
  EXPECT_EQ(from_torchvision_keys(torchvision, KeyLayout::Wandering007).keys(),
            (std::vector<std::string>{
                "features.conv0.weight", "features.denseblock3.denselayer1.bottleneck.norm_weight",
                "features.norm4.weight", "features.norm4.bias", "classifier.weight"}));
  StateDict both = three_blocks("norm_final");
  both.insert("features.norm5.weight", torch::ones({2}));
  EXPECT_ERROR_CONTAINS(from_torchvision_keys(to_torchvision_keys(both), KeyLayout::Gpleiss),
                        "mixes key layouts");
  EXPECT_EQ(parse_key_layout("gpleiss"), KeyLayout::Gpleiss);
  EXPECT_EQ(parse_key_layout("efficient-pytorch"), KeyLayout::Wandering007);
  EXPECT_EQ(key_layout_names(), "torchvision, gpleiss, wandering007");
}

// "model." (like "module.") is stripped; another prefix on every key is named in one line.
TEST(KeyMapping, CommonPrefixIsStrippedOrNamed) {
  torch::nn::Linear linear(2, 3);
  StateDict wrapped;
  for (const auto& item : state_dict(*linear)) wrapped.insert("model." + item.key(), item.value());
  EXPECT_EQ(to_torchvision_keys(wrapped).keys(), state_dict(*linear).keys());
  StateDict backbone;
  for (const auto& item : state_dict(*linear)) {
    backbone.insert("backbone.net." + item.key(), item.value());
  }
  EXPECT_ERROR_CONTAINS(load_state_dict(*linear, backbone),
                        "every key in the weights starts with 'backbone.net.' (e.g. "
                        "'backbone.net.weight'), and without it all 2 keys match the model");
  torch::nn::Sequential outer(linear);
  EXPECT_ERROR_CONTAINS(load_state_dict(*outer, state_dict(*linear)),
                        "every key of the model starts with '0.'");
}

TEST(KeyMapping, StateDictIsFoundInsideTrainingWrappers) {
  const pth::Checkpoint wrapped = pth::read_checkpoint(checkpoint_dir() + "/efficient_zip.pth");
  const LocatedStateDict located = locate_state_dict(wrapped.root, "efficient_zip.pth");
  EXPECT_EQ(located.path, "state_dict");
  const pth::Checkpoint generic = pth::read_checkpoint(checkpoint_dir() + "/generic_zip.pth");
  EXPECT_ERROR_CONTAINS(locate_state_dict(*generic.root.find("nested"), "g.pth"),
                        "its top level holds list (list), tuple (tuple)");
  EXPECT_ERROR_CONTAINS(locate_state_dict(Value::list(), "g.pth"), "it holds a list");
}

TEST(Weights, StrictLoadListsEveryProblem) {
  DenseNet model(preset_options("densenet169"));
  EXPECT_ERROR_CONTAINS(load_weights(*model, checkpoint_dir() + "/densenet121_legacy.pth"),
                        "missing keys");
  EXPECT_ERROR_CONTAINS(load_weights(*model, checkpoint_dir() + "/densenet121_legacy.pth"),
                        "features.denseblock3.denselayer25.norm1.weight");
}

// The acceptance check: torchvision-style published weights (legacy format, legacy keys, no
// num_batches_tracked) give PyTorch's logits.
class TorchvisionLegacyWeights : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchvisionLegacyWeights, ReproducePyTorchLogits) {
  const std::string arch = GetParam();
  const TensorFile io = read_safetensors(checkpoint_dir() + "/" + arch + "_io.safetensors");
  for (const MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient}) {
    DenseNet model(preset_options(arch).memory(mode));
    load_weights(*model, checkpoint_dir() + "/" + arch + "_legacy.pth");
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor logits = model->forward(io.tensors["input"]);
    EXPECT_TRUE(testing::tensors_close(arch + " logits", logits, io.tensors["logits"], 1e-4));
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, TorchvisionLegacyWeights,
                         ::testing::Values("densenet121", "densenet161", "densenet169",
                                           "densenet201"));

}  // namespace
}  // namespace densenet
