// Hugging Face safetensors: one file is an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, "__metadata__": {...}} and the raw tensors; a sharded checkpoint adds
// model.safetensors.index.json (weight_map: tensor -> file). Read with every offset checked, written
// deterministically (name order, header padded to 8 bytes).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.hpp"

namespace r1::st {

// Element types of the format. Those with an r1hpc DType read as such; F16 reads as f32 (r1hpc has no f16);
// the rest are validated for size but refused when read.
enum class Dtype { f64, f32, f16, bf16, f8_e4m3, f8_e5m2, i64, i32, i16, i8, u64, u32, u16, u8, boolean };
std::string_view dtype_name(Dtype t);  // "F32", "F8_E4M3", ...
std::size_t dtype_bytes(Dtype t);
Dtype from_dtype(DType t);  // the safetensors type of an r1hpc tensor

struct Entry {
  std::string name;
  Dtype dtype = Dtype::f32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // data_offsets, relative to the byte after the header
  std::filesystem::path file;
  std::int64_t numel() const;
};

// One file with its header parsed and validated at construction: the header length lies within the file,
// the JSON is well formed, every dtype is known, each tensor's offsets span exactly shape x dtype bytes, and
// the tensors tile the data section without overlap, gap or overrun. Errors (user: a damaged input) name the file and tensor.
class File {
 public:
  explicit File(std::filesystem::path path);
  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const Entry& entry(const std::string& name) const;
  // The tensor as a host tensor of its own type (F16 converted to f32).
  Tensor read(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::uint64_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a .safetensors file, a model.safetensors.index.json, or a directory holding either
// (the index wins). Every tensor named by the index must be in the shard it names and vice versa.
class Reader {
 public:
  explicit Reader(const std::filesystem::path& path);
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const Entry& entry(const std::string& name) const;
  Tensor read(const std::string& name) const;
  // F64, F32, BF16 and F16 tensors as host f32; other types are an error naming the tensor.
  Tensor read_f32(const std::string& name) const;
  const std::vector<File>& files() const { return files_; }

 private:
  std::vector<File> files_;
  std::map<std::string, std::size_t> where_;  // tensor -> index into files_
};

struct WriteOptions {
  std::uint64_t max_shard_bytes = 0;  // 0: one model.safetensors; else model-0000i-of-0000n.safetensors + index
  std::map<std::string, std::string> metadata;  // __metadata__ of every file
};

// Writes one file (tensors in name order), atomically: a temporary, then a rename.
void write_file(const std::filesystem::path& file, const std::map<std::string, Tensor>& tensors,
                const std::map<std::string, std::string>& metadata = {});

// Writes the tensors into `dir` (created if needed) as one file or as shards of at most max_shard_bytes of
// tensor data (a larger tensor gets a shard of its own) with model.safetensors.index.json. Returns the files.
std::vector<std::filesystem::path> write_checkpoint(const std::filesystem::path& dir,
                                                    const std::map<std::string, Tensor>& tensors,
                                                    const WriteOptions& options = {});

}  // namespace r1::st
