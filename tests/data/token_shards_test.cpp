// HDF5 token shards as pretraining data: read exactly (any integer type, files of a directory in name
// order), and every malformed shard a user error naming the file.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/error.hpp"
#include "data/token_shards.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("r1hpc_shards_test_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
};

// Writes `values` as dataset `name` of HDF5 type `type` and shape `dims` (1-D of all values by default).
template <typename T>
std::string write_shard(const fs::path& path, const std::vector<T>& values, hid_t type, const char* name = "tokens",
                        std::vector<hsize_t> dims = {}) {
  if (dims.empty()) dims = {values.size()};
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t s = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(d);
  H5Sclose(s);
  H5Fclose(f);
  return path.string();
}

std::string error_of(const std::string& path, std::int64_t vocab) {
  try {
    read_token_shards(path, vocab);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user) << e.what();
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(TokenShards, ReadsEveryTokenOfAFileExactly) {
  const TempDir t;
  std::vector<std::int32_t> ids(20000);
  std::iota(ids.begin(), ids.end(), 0);
  for (auto& v : ids) v %= 1000;
  const std::string path = write_shard(t.dir / "a.h5", ids, H5T_NATIVE_INT32);
  EXPECT_TRUE(names_token_shards(path));
  EXPECT_EQ(read_token_shards(path, 1000), ids);  // 20,000 tokens, not the file's bytes read as text
}

TEST(TokenShards, ReadsADirectoryInNameOrderAndAnyIntegerType) {
  const TempDir t;
  write_shard(t.dir / "part-1.h5", std::vector<std::uint16_t>{7, 8}, H5T_NATIVE_UINT16);
  write_shard(t.dir / "part-0.hdf5", std::vector<std::int64_t>{1, 2, 3}, H5T_NATIVE_INT64);
  std::ofstream(t.dir / "README.txt") << "not a shard\n";
  EXPECT_TRUE(names_token_shards(t.dir.string()));
  EXPECT_EQ(read_token_shards(t.dir.string(), 10), (std::vector<std::int32_t>{1, 2, 3, 7, 8}));
}

TEST(TokenShards, TextIsNotTakenForShards) {
  const TempDir t;
  const fs::path text = t.dir / "corpus.txt";
  std::ofstream(text) << "plain text\n";
  EXPECT_FALSE(names_token_shards(text.string()));
}

TEST(TokenShards, MalformedShardsNameTheFile) {
  const TempDir t;
  const std::string range = write_shard(t.dir / "range.h5", std::vector<std::int32_t>{1, 2, 50}, H5T_NATIVE_INT32);
  EXPECT_NE(error_of(range, 50).find(range + ": tokens[2] = 50 is outside the model's vocabulary [0, 50)"), std::string::npos);
  const std::string negative = write_shard(t.dir / "neg.h5", std::vector<std::int32_t>{-1}, H5T_NATIVE_INT32);
  EXPECT_NE(error_of(negative, 50).find("tokens[0] = -1"), std::string::npos);
  const std::string floats = write_shard(t.dir / "float.h5", std::vector<float>{1.0f}, H5T_NATIVE_FLOAT);
  EXPECT_NE(error_of(floats, 50).find(floats + ": dataset \"tokens\" must hold integers"), std::string::npos);
  const std::string flat =
      write_shard(t.dir / "2d.h5", std::vector<std::int32_t>{1, 2, 3, 4}, H5T_NATIVE_INT32, "tokens", {2, 2});
  EXPECT_NE(error_of(flat, 50).find(flat + ": dataset \"tokens\" must be one-dimensional"), std::string::npos);
  const std::string named = write_shard(t.dir / "ids.h5", std::vector<std::int32_t>{1}, H5T_NATIVE_INT32, "input_ids");
  EXPECT_NE(error_of(named, 50).find(named + ": has no dataset \"tokens\""), std::string::npos);
  const std::string empty = write_shard(t.dir / "empty.h5", std::vector<std::int32_t>{}, H5T_NATIVE_INT32, "tokens", {0});
  EXPECT_NE(error_of(empty, 50).find(empty + ": dataset \"tokens\" is empty"), std::string::npos);
  const fs::path fake = t.dir / "fake.h5";
  std::ofstream(fake) << "text in a .h5 file\n";
  EXPECT_TRUE(names_token_shards(fake.string()));
  EXPECT_NE(error_of(fake.string(), 50).find(fake.string() + ": not an HDF5 file"), std::string::npos);
  const fs::path truncated = t.dir / "truncated.h5";
  fs::copy_file(range, truncated);
  fs::resize_file(truncated, 64);
  EXPECT_NE(error_of(truncated.string(), 50).find(truncated.string() + ": cannot be opened as HDF5"), std::string::npos);
  const fs::path none = t.dir / "none";
  fs::create_directories(none);
  EXPECT_NE(error_of(none.string(), 50).find("holds no *.h5 or *.hdf5 file"), std::string::npos);
}
