// Checking a checkpoint without trusting it: every file opened in a forked child (isolate.hpp), every
// checksum (HDF5's metadata, Fletcher32 of the data, meta/checksums) and, in full, every value finite.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace r1::ckpt {

enum class VerifyDepth {
  structure,  // index.h5, its meta checksums and tensor map, every shard's datasets and chunk indexes
  full,       // also every tensor's data read back (Fletcher32) and checked finite
};

struct VerifyResult {
  std::vector<std::string> problems;  // each names the file, and the tensor or meta field
  std::string stage;
  std::int64_t step = -1;
  std::int64_t tensors = 0, shards = 0, bytes = 0;  // bytes: tensor data read back (full)
  bool checksummed = false;  // meta/checksums present (false: written before checksums existed)
  bool ok() const { return problems.empty(); }
};

// Checks `checkpoint` (a step directory) in a child process: a crash or hang of the HDF5 library on a
// damaged file is reported as a problem naming the file it was reading.
VerifyResult verify_checkpoint(const std::filesystem::path& checkpoint, VerifyDepth depth);

// Structure check before this process opens a checkpoint (read_meta, list_tensors, load call it): an io
// error naming the file and what is wrong. Remembers checkpoints that passed while their files keep
// their sizes and modification times.
void vet(const std::filesystem::path& checkpoint);

// latest(dir), vetted. A damaged newest checkpoint (e.g. a power cut that truncated its files) is passed
// over with a warning for the newest older step directory that passes; resuming from it reproduces the
// same run, only some steps later. An error when none passes.
std::optional<std::filesystem::path> latest_intact(const std::filesystem::path& dir);

}  // namespace r1::ckpt
