// Pre-tokenised pretraining data: HDF5 token shards, read whole into one token stream.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace r1 {

// Whether `path` is a directory, a *.h5 / *.hdf5 file or a file that starts with the HDF5 signature:
// data.train_path then names token shards, not text.
bool names_token_shards(const std::string& path);

// The token stream of `path`: one HDF5 file, or every *.h5 / *.hdf5 file of a directory in name order,
// each holding a 1-D integer dataset "tokens" (documents already joined by the tokenizer's end-of-text id).
// Every id must lie in [0, vocab_size). A file that cannot be opened, lacks "tokens", holds another shape
// or type, is empty, or has an id out of range is a user error naming the file (and the position); so is
// one that crashes HDF5, which reads each file in a child process. A file holds fewer than 2^30 tokens.
std::vector<std::int32_t> read_token_shards(const std::string& path, std::int64_t vocab_size);

}  // namespace r1
