// index.h5 read in-process, shared by the loader (after the checkpoint was vetted) and the verifier (in
// its checking child): metadata with its checksums checked, the tensor list, and each tensor's map.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/h5.hpp"

namespace r1::ckpt::index_file {

// Opened read-only; an io error naming the file when HDF5 refuses it.
h5::Id open(const std::filesystem::path& index);

// The meta group. Its texts are checked against meta/checksums (checkpoints written before checksums
// existed have none, and files in HDF5's earliest format are the only ones allowed to lack them);
// `tensor_map` (null: not checked) is compared with the stored checksum of the map.
Meta read_meta(hid_t file, const std::filesystem::path& index, const std::string* tensor_map);

// Every dataset of the file (the global tensors), sorted by name.
std::vector<std::string> tensor_names(hid_t file, const std::filesystem::path& index);

// One box of a virtual dataset's map: global[start, start + count) is `dataset` of shard file `file`.
struct Box {
  std::string file, dataset;
  std::vector<std::int64_t> start, count;
};
// The boxes of tensor `ds` (virtual, or an io error naming `where`), in mapping order.
std::vector<Box> boxes(hid_t ds, const std::string& where);
Shape dataset_shape(hid_t ds);

}  // namespace r1::ckpt::index_file
