#include "data/token_shards.hpp"

#include <hdf5.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint/h5.hpp"
#include "checkpoint/isolate.hpp"
#include "core/error.hpp"

namespace r1 {
namespace {

namespace fs = std::filesystem;
using ckpt::h5::Id;

constexpr std::array<char, 8> kSignature{'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

bool has_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<char, 8> head{};
  return in.read(head.data(), head.size()) && head == kSignature;
}

std::vector<std::string> shard_files(const std::string& path) {
  if (!fs::is_directory(path)) return {path};
  std::vector<std::string> files;
  for (const fs::directory_entry& e : fs::directory_iterator(path)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".h5" || ext == ".hdf5")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) R1_FAIL(user, path, ": a directory of token shards holds no *.h5 or *.hdf5 file");
  return files;
}

// The "tokens" of one shard, checked, as the bytes of their int32 values.
std::string read_shard_bytes(const std::string& file, std::int64_t vocab_size) {
  ckpt::h5::quiet();
  const Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) R1_FAIL(user, file, ": cannot be opened as HDF5: ", ckpt::h5::error_text());
  if (H5Lexists(f.get(), "tokens", H5P_DEFAULT) <= 0) R1_FAIL(user, file, ": has no dataset \"tokens\"");
  const Id d(H5Dopen2(f.get(), "tokens", H5P_DEFAULT), H5Dclose);
  if (!d.ok()) R1_FAIL(user, file, ": \"tokens\" is not a dataset: ", ckpt::h5::error_text());
  const Id type(H5Dget_type(d.get()), H5Tclose);
  const Id space(H5Dget_space(d.get()), H5Sclose);
  if (!type.ok() || H5Tget_class(type.get()) != H5T_INTEGER)
    R1_FAIL(user, file, ": dataset \"tokens\" must hold integers (token ids)");
  if (!space.ok() || H5Sget_simple_extent_ndims(space.get()) != 1)
    R1_FAIL(user, file, ": dataset \"tokens\" must be one-dimensional (one token stream)");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  if (n == 0) R1_FAIL(user, file, ": dataset \"tokens\" is empty");
  if (n >= (hsize_t{1} << 30)) R1_FAIL(user, file, ": ", n, " tokens; split the stream into files of fewer than 2^30 tokens");
  std::vector<std::int64_t> ids(n);
  if (H5Dread(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids.data()) < 0)
    R1_FAIL(user, file, ": cannot read dataset \"tokens\": ", ckpt::h5::error_text());
  const auto bad = std::find_if(ids.begin(), ids.end(), [&](std::int64_t id) { return id < 0 || id >= vocab_size; });
  if (bad != ids.end())
    R1_FAIL(user, file, ": tokens[", bad - ids.begin(), "] = ", *bad, " is outside the model's vocabulary [0, ", vocab_size,
            ") (model.vocab_size)");
  std::string bytes(ids.size() * sizeof(std::int32_t), '\0');
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto id = static_cast<std::int32_t>(ids[i]);
    std::memcpy(bytes.data() + i * sizeof id, &id, sizeof id);
  }
  return bytes;
}

// Appends the "tokens" of one shard to `stream`. HDF5 reads the untrusted file in a child process
// (ckpt::run_isolated), so a damaged file that crashes the library is an error naming it, not a crash.
void read_shard(const std::string& file, std::int64_t vocab_size, std::vector<std::int32_t>& stream) {
  if (!has_signature(file)) R1_FAIL(user, file, ": not an HDF5 file (token shards are HDF5 with a dataset \"tokens\")");
  const std::size_t memory = (std::size_t{1} << 30) + 16 * static_cast<std::size_t>(fs::file_size(file));
  const ckpt::Isolated r = ckpt::run_isolated([&](const ckpt::Progress&) { return read_shard_bytes(file, vocab_size); },
                                              /*timeout_s=*/3600, memory);
  if (r.outcome == ckpt::Isolated::Outcome::threw) throw Error(ErrorKind::user, r.text);
  if (r.outcome != ckpt::Isolated::Outcome::returned) R1_FAIL(user, file, ": reading it as HDF5 failed (a damaged file?): ", r.text);
  const std::size_t first = stream.size();
  stream.resize(first + r.text.size() / sizeof(std::int32_t));
  std::memcpy(stream.data() + first, r.text.data(), r.text.size());
}

}  // namespace

bool names_token_shards(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".h5" || ext == ".hdf5" || fs::is_directory(path) || has_signature(path);
}

std::vector<std::int32_t> read_token_shards(const std::string& path, std::int64_t vocab_size) {
  std::vector<std::int32_t> stream;
  for (const std::string& file : shard_files(path)) read_shard(file, vocab_size, stream);
  return stream;
}

}  // namespace r1
