// Supervised fine-tuning data: prompt/response examples (JSONL or the synthetic cold-start world), their
// tokenisation under a template with a response-only loss mask, and first-fit packing into rows addressed
// by a global row index, so every rank of every layout reads the same global batch.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template.hpp"
#include "data/reasoning_world.hpp"
#include "model/batch.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {

class Deck;
struct RunConfig;

struct SftExample {
  std::string prompt, response;
  std::string provenance;  // where it came from: "sft.jsonl:12 {...}", "synthetic:countdown:es:1234"
};

// One JSON object per line with string fields "prompt" and "response" (non-empty); an optional
// "provenance" (string or object, as rejection_sampling writes it) is appended to path:line; other fields
// are ignored; blank lines are skipped. Errors name path:line.
// allow_empty: a file without examples is no error (other examples are added to it).
std::vector<SftExample> load_sft_jsonl(const std::string& path, bool allow_empty = false);

// Cold-start style data of the synthetic world: four worked solutions (<think>..</think><answer>..</answer>)
// of train-split problems to one non-reasoning text example, English and Spanish; a function of (n, seed).
std::vector<SftExample> synthetic_sft_examples(std::int64_t n, std::uint64_t seed, const ProblemMix& mix = {});

// One tokenised example: format.prompt(prompt) + format.response(response) (its end token last); tokens from
// response_start on are the response.
struct SftSequence {
  std::vector<std::int32_t> tokens;
  std::int64_t response_start = 0;
};
SftSequence tokenize_example(const SftExample& e, const PromptFormat& format);

struct SftPacking {
  std::int64_t seq_len = 256;
  bool pack = true;             // several examples per row; false: one example per row, right-padded
  bool loss_on_prompt = false;  // false: loss on response tokens (and the EOS) only
  bool shuffle = true;          // a seeded order of the examples per epoch
  std::uint64_t seed = 0;
  std::int32_t pad = kTokPad;
};

// One micro-batch of packed rows and what it holds.
struct SftBatch {
  TokenBatch tokens;
  std::int64_t filled = 0;    // positions holding example tokens (the rest is padding)
  std::int64_t examples = 0;  // examples (segments) in the rows
};

// The rows of every epoch. An example of n tokens fills n - 1 positions of a row (input t predicts token
// t + 1; the EOS is only a target). Examples longer than seq_len + 1 tokens are truncated at the end (kept
// in training, counted by truncated()); examples whose prompt alone fills a row are dropped (counted by
// without_loss()). In each epoch the examples, in that epoch's order, go first-fit into rows of seq_len
// positions. Each example of a row is its own segment (attention stays inside it, RoPE positions
// restart); padding is a segment of its own with pad ids and no loss.
class SftData {
 public:
  SftData(std::vector<SftSequence> sequences, const SftPacking& packing);
  // data.source = files: data.train_path (JSONL); synthetic: synthetic_sft_examples(data.synthetic_examples,
  // run.seed). [sft] loss_on_prompt/pack, data.seq_len/shuffle/chat_template, tokenised by data.tokenizer
  // (whose vocabulary must fit model.vocab_size, an error naming the deck line of the key in `deck`).
  static SftData from_config(const RunConfig& cfg, const Deck& deck);

  std::int64_t examples() const { return static_cast<std::int64_t>(seqs_.size()); }
  // The checkpoints the examples were sampled from (the "checkpoint" of rejection_sampling's provenance
  // records), each once: the data edges of the lineage. Filled by from_config.
  std::vector<std::string> source_checkpoints;
  ChatTemplate chat_template = ChatTemplate::raw;  // the layout of the prompts (data.chat_template resolved); by from_config
  std::int64_t truncated() const { return truncated_; }        // examples cut to seq_len + 1 tokens
  std::int64_t without_loss() const { return without_loss_; }  // examples dropped: no response token fits
  std::int64_t positions() const { return positions_; }        // row positions the examples fill per epoch
  const SftPacking& packing() const { return packing_; }
  // Rows of epoch e (0-based; packing depends on the epoch's order) and of the first `epochs` epochs.
  std::int64_t rows_in_epoch(std::int64_t e);
  std::int64_t rows(std::int64_t epochs);
  // Epochs completed after global row `end` (exclusive): e + (rows of epoch e before end) / rows_in_epoch(e).
  double epoch_progress(std::int64_t end);
  // Rows [first, first + count) of the global row order, epoch after epoch; rows at or past `end` are
  // all padding (no loss), so the last step of a run fixed by epochs may be short.
  SftBatch batch(std::int64_t first, std::int64_t count, std::int64_t end);

 private:
  struct Epoch {
    std::vector<std::int64_t> row_start;  // rows + 1 offsets into members
    std::vector<std::int32_t> members;    // example indices, row after row
  };
  const Epoch& epoch(std::int64_t e);
  Epoch pack_epoch(std::int64_t e) const;
  std::int64_t length(std::int32_t example) const {  // positions the example fills
    return static_cast<std::int64_t>(seqs_[static_cast<std::size_t>(example)].tokens.size()) - 1;
  }

  std::vector<SftSequence> seqs_;
  SftPacking packing_;
  std::int64_t truncated_ = 0, without_loss_ = 0, positions_ = 0;
  std::vector<std::int64_t> epoch_rows_;  // rows of epochs 0, 1, ... packed so far
  std::map<std::int64_t, Epoch> cache_;   // the packed rows of the last epochs used
};

}  // namespace r1
