// r1hpc's safetensors reader and writer: round trips (one file, shards with index.json, F32/BF16/F8/I32),
// the file layout the format fixes, and damaged files refused with errors naming the file and the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.hpp"
#include "core/error.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1hpc_safetensors_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Tensor ramp(const Shape& s, DType dt, int seed) {
  Tensor t = Tensor::host(s, dt);
  auto* b = static_cast<unsigned char*>(t.raw());
  for (std::size_t i = 0; i < t.nbytes(); ++i) b[i] = static_cast<unsigned char>((i * 31 + seed * 7) & 0x7f);
  return t;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::map<std::string, Tensor> sample() {
  return {{"b.weight", ramp({5, 3}, DType::bf16, 1)},
          {"a.weight", ramp({4, 6}, DType::f32, 2)},
          {"c.fp8", ramp({3, 7}, DType::f8e4m3, 3)},
          {"d.ids", ramp({9}, DType::i32, 4)},
          {"e.scalar", ramp({}, DType::f32, 5)}};
}

// A file made of a given header text and `data` bytes of data.
fs::path raw_file(const fs::path& dir, const std::string& header, std::size_t data, std::uint64_t claimed_len = 0) {
  const fs::path p = dir / "bad.safetensors";
  std::ofstream out(p, std::ios::binary);
  const std::uint64_t n = claimed_len ? claimed_len : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data, '\0');
  return p;
}

std::string error_of(const fs::path& p) {
  try {
    st::File f(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, OneFileRoundTripKeepsEveryTypeShapeAndByte) {
  const fs::path dir = fresh_dir("one");
  const auto files = st::write_checkpoint(dir, sample(), {.metadata = {{"format", "pt"}}});
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename(), "model.safetensors");
  const st::Reader r(dir);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"a.weight", "b.weight", "c.fp8", "d.ids", "e.scalar"}));
  for (const auto& [name, t] : sample()) EXPECT_TRUE(bit_equal(r.read(name), t)) << name;
  EXPECT_EQ(r.entry("c.fp8").dtype, st::Dtype::f8_e4m3);
  EXPECT_EQ(r.files()[0].metadata().at("format"), "pt");
}

TEST(Safetensors, LayoutIsTheFormatsAlignedHeaderThenNameOrderedData) {
  const fs::path dir = fresh_dir("layout");
  st::write_checkpoint(dir, sample());
  std::ifstream in(dir / "model.safetensors", std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  EXPECT_EQ(n % 8, 0u);  // data starts 8-byte aligned
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j.at("a.weight").at("data_offsets"), nlohmann::json({0, 96}));
  EXPECT_EQ(j.at("b.weight").at("dtype"), "BF16");
  EXPECT_EQ(j.at("b.weight").at("data_offsets"), nlohmann::json({96, 126}));
  EXPECT_EQ(j.at("e.scalar").at("shape"), nlohmann::json::array());
  // Writing the same tensors again gives the same bytes.
  const fs::path again = fresh_dir("layout2");
  st::write_checkpoint(again, sample());
  std::ifstream a(dir / "model.safetensors", std::ios::binary), b(again / "model.safetensors", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));
}

TEST(Safetensors, ShardsRespectTheLimitAndTheIndexMapsEveryTensor) {
  const fs::path dir = fresh_dir("shards");
  std::map<std::string, Tensor> t;
  for (int i = 0; i < 6; ++i) t.emplace("w" + std::to_string(i), ramp({10, 10}, DType::f32, i));  // 400 bytes each
  t.emplace("big", ramp({300}, DType::f32, 9));  // 1200 bytes: over the limit, a shard of its own
  const auto files = st::write_checkpoint(dir, t, {.max_shard_bytes = 1000, .metadata = {}});
  ASSERT_EQ(files.back().filename(), "model.safetensors.index.json");
  EXPECT_EQ(files.size(), 5u);  // big | w0 w1 | w2 w3 | w4 w5, and the index
  EXPECT_EQ(files[0].filename(), "model-00001-of-00004.safetensors");
  for (std::size_t i = 0; i + 1 < files.size(); ++i) {
    const st::File f(files[i]);
    std::uint64_t bytes = 0;
    for (const auto& [n, e] : f.entries()) bytes += e.end - e.begin;
    EXPECT_TRUE(bytes <= 1000 || f.entries().size() == 1) << files[i];
  }
  const st::Reader r(dir);
  ASSERT_EQ(r.names().size(), t.size());
  for (const auto& [name, x] : t) EXPECT_TRUE(bit_equal(r.read(name), x)) << name;
  const auto index = nlohmann::json::parse(std::ifstream(files.back()));
  EXPECT_EQ(index.at("metadata").at("total_size"), 6 * 400 + 1200);
  EXPECT_EQ(index.at("weight_map").at("big"), "model-00001-of-00004.safetensors");
}

TEST(Safetensors, BF16AndF16ReadAsF32) {
  const fs::path dir = fresh_dir("f16");
  Tensor b = Tensor::host({3}, DType::bf16);
  b.data<bf16>()[0] = to_bf16(1.5f);
  b.data<bf16>()[1] = to_bf16(-2.25f);
  b.data<bf16>()[2] = to_bf16(0.0f);
  st::write_checkpoint(dir, {{"b", b}});
  const Tensor f = st::Reader(dir).read_f32("b");
  EXPECT_EQ(f.data<float>()[0], 1.5f);
  EXPECT_EQ(f.data<float>()[1], -2.25f);
  // An F16 file (r1hpc never writes one): 1.0 = 0x3c00, -0.5 = 0xb800, 65504 = 0x7bff, 2^-24 = 0x0001.
  const std::string h = R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})";
  const fs::path p = dir / "half.safetensors";
  {
    std::ofstream out(p, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(i == 0 ? h.size() : 0));
    out << h;
    for (const std::uint16_t v : {0x3c00, 0xb800, 0x7bff, 0x0001}) out.put(static_cast<char>(v & 0xff)).put(static_cast<char>(v >> 8));
  }
  const Tensor half = st::Reader(p).read_f32("h");
  EXPECT_EQ(half.data<float>()[0], 1.0f);
  EXPECT_EQ(half.data<float>()[1], -0.5f);
  EXPECT_EQ(half.data<float>()[2], 65504.0f);
  EXPECT_EQ(half.data<float>()[3], 0x1p-24f);
}

TEST(SafetensorsErrors, HeaderLengthBeyondTheFile) {
  const fs::path dir = fresh_dir("len");
  const std::string e = error_of(raw_file(dir, "{}", 0, 1000));
  EXPECT_NE(e.find("bad.safetensors: safetensors header length 1000 exceeds the 2 bytes"), std::string::npos) << e;
}

TEST(SafetensorsErrors, TooShortForTheLength) {
  const fs::path dir = fresh_dir("short");
  const fs::path p = dir / "tiny.safetensors";
  std::ofstream(p) << "abc";
  EXPECT_NE(error_of(p).find("tiny.safetensors: 3 bytes, too short"), std::string::npos);
}

TEST(SafetensorsErrors, MalformedJson) {
  const fs::path dir = fresh_dir("json");
  const std::string e = error_of(raw_file(dir, R"({"a": {"dtype": "F32",)", 0));
  EXPECT_NE(e.find("bad.safetensors: safetensors header is not valid JSON"), std::string::npos) << e;
}

TEST(SafetensorsErrors, OverlappingOffsetsNameBothTensors) {
  const fs::path dir = fresh_dir("overlap");
  const std::string e = error_of(raw_file(
      dir, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  EXPECT_NE(e.find("bad.safetensors: tensor b: data_offsets [4, 12] overlap tensor a [0, 8]"), std::string::npos) << e;
}

TEST(SafetensorsErrors, ShapeAndDtypeDisagreeWithTheOffsets) {
  const fs::path dir = fresh_dir("size");
  const std::string e = error_of(raw_file(dir, R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,24]}})", 24));
  EXPECT_NE(e.find("bad.safetensors: tensor w: shape [2,3] of BF16 needs 12 bytes, but data_offsets [0,24] span 24"),
            std::string::npos)
      << e;
}

TEST(SafetensorsErrors, TruncatedData) {
  const fs::path dir = fresh_dir("trunc");
  const std::string e = error_of(raw_file(dir, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 10));
  EXPECT_NE(e.find("bad.safetensors: tensor w: data_offsets [0,16] reach past the 10 bytes of data in the file (truncated?)"),
            std::string::npos)
      << e;
}

TEST(SafetensorsErrors, UnknownDtypeGapsAndTrailingBytes) {
  const fs::path dir = fresh_dir("misc");
  EXPECT_NE(error_of(raw_file(dir, R"({"w":{"dtype":"F12","shape":[1],"data_offsets":[0,1]}})", 1)).find("tensor w: unknown dtype \"F12\""),
            std::string::npos);
  EXPECT_NE(error_of(raw_file(dir, R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})", 3)).find("tensor w: data_offsets start at 2"),
            std::string::npos);
  EXPECT_NE(error_of(raw_file(dir, R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 5)).find("4 bytes after the last tensor (w)"),
            std::string::npos);
  EXPECT_NE(error_of(raw_file(dir, R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1)).find("tensor w: bad shape"),
            std::string::npos);
}

TEST(SafetensorsErrors, IndexNamingAShardWithoutTheTensor) {
  const fs::path dir = fresh_dir("index");
  st::write_checkpoint(dir, {{"a", ramp({4}, DType::f32, 1)}, {"b", ramp({4}, DType::f32, 2)}}, {.max_shard_bytes = 16, .metadata = {}});
  const fs::path index = dir / "model.safetensors.index.json";
  auto j = nlohmann::json::parse(std::ifstream(index));
  j["weight_map"]["b"] = "model-00001-of-00002.safetensors";
  std::ofstream(index) << j.dump();
  try {
    st::Reader r(dir);
    FAIL() << "the index was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor b is mapped to model-00001-of-00002.safetensors, which does not hold it"),
              std::string::npos)
        << e.what();
  }
}
