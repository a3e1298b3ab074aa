// The checksums of index.h5's meta group: a CRC-32 of every meta field's text and of the tensor map
// (every virtual dataset's shard boxes), stored as the JSON attribute meta/checksums and checked on load.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/checkpoint.hpp"

namespace r1::ckpt {

// One line of the tensor map's text: a box of global tensor `name` stored in `file`'s `dataset`.
std::string map_line(const std::string& name, const std::string& dtype, const std::vector<std::int64_t>& global,
                     const std::string& file, const std::string& dataset, const std::vector<std::int64_t>& start,
                     const std::vector<std::int64_t>& count);

// Every meta attribute by name, as the text its checksum covers: strings as stored in the file, integer
// attributes as JSON arrays.
using MetaTexts = std::vector<std::pair<std::string, std::string>>;
MetaTexts meta_texts(const Meta& meta);
std::string int_text(const std::vector<std::int64_t>& values);

// The JSON text of meta/checksums: every field of `texts` and the tensor map text (map_line of every
// box, tensors by name, boxes in mapping order).
std::string meta_checksums(const MetaTexts& texts, const std::string& tensor_map);

// Compares the texts read from index.h5 with meta/checksums (its text); a mismatch is an io error naming
// `index` and the field. `tensor_map` null: the map is not checked (the caller did not walk the mapping).
void check_meta_checksums(const MetaTexts& texts, const std::string* tensor_map, const std::string& checksums,
                          const std::filesystem::path& index);

}  // namespace r1::ckpt
