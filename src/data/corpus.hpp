// Pretraining text: a token stream (any Tokenizer) cut into fixed-length sequences addressed by a global
// sequence index, so every rank of every layout reads the same global batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/reasoning_world.hpp"
#include "model/batch.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {

class Deck;
struct RunConfig;

// The synthetic pretraining corpus: generated problems (chat template, <think> and <answer> tags) and
// non-reasoning text, in English and Spanish; a function of (examples, seed, worked_share). A share
// worked_share of the problems (seeded draw) shows the worked solution, the others the answer alone
// (direct_answer): below 1 the base mostly answers without reasoning, R1-Zero's starting point.
std::vector<std::string> synthetic_documents(std::int64_t examples, std::uint64_t seed, double worked_share = 1.0,
                                             const ProblemMix& mix = {});

class Corpus {
 public:
  // data.source = files: data.train_path, plain text (documents separated by blank lines), JSONL with
  // a "text" field, or HDF5 token shards (read_token_shards: already tokenised, ids below model.vocab_size);
  // synthetic: synthetic_documents(data.synthetic_examples, run.seed). Tokenized by
  // data.tokenizer (byte, or a tokenizer.json), whose vocabulary must fit model.vocab_size. What the files
  // hold is checked here, naming the deck line of the key (`deck`).
  static Corpus from_config(const RunConfig& cfg, const Deck& deck);
  // The same for another file of the deck, named by its key (the held-out text of data.eval_path).
  static Corpus from_file(const std::string& key, const std::string& path, const RunConfig& cfg, const Deck& deck);
  // Documents joined by the tokenizer's EOS (special_ids().eos; the byte tokenizer when none is given).
  explicit Corpus(const std::vector<std::string>& documents);
  Corpus(const std::vector<std::string>& documents, const Tokenizer& tokenizer);

  std::int64_t tokens() const { return static_cast<std::int64_t>(stream_.size()); }
  // Sequences per pass over the stream at this length.
  std::int64_t sequences(std::int64_t seq_len) const;
  // Rows [first, first + count) of the global sequence order (wrapping into later epochs, each epoch
  // in a seeded random order when shuffle is set) as one micro-batch.
  TokenBatch batch(std::int64_t first, std::int64_t count, std::int64_t seq_len, std::uint64_t seed, bool shuffle) const;

 private:
  Corpus() = default;
  std::vector<std::int32_t> stream_;  // documents joined by EOS
};

}  // namespace r1
