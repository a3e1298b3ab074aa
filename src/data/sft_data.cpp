#include "data/sft_data.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <numeric>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/rng.hpp"
#include "data/reasoning_world.hpp"
#include "data/world_text.hpp"
#include "deck/deck.hpp"

namespace r1 {

namespace {
constexpr std::uint32_t kOrderStream = 0x5f7;  // the RNG stream of the per-epoch example order
}  // namespace

std::vector<SftExample> load_sft_jsonl(const std::string& path, bool allow_empty) {
  std::istringstream in(read_file(path));
  std::vector<SftExample> out;
  std::string line;
  for (std::int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) R1_FAIL(user, path, ":", lineno, ": not a JSON object");
    for (const char* field : {"prompt", "response"})
      if (!j.contains(field) || !j[field].is_string())
        R1_FAIL(user, path, ":", lineno, ": expected a string field \"", field, "\"");
    SftExample e{j["prompt"].get<std::string>(), j["response"].get<std::string>(), path + ":" + std::to_string(lineno)};
    if (j.contains("provenance"))  // rejection_sampling's record of where a row came from
      e.provenance += " " + (j["provenance"].is_string() ? j["provenance"].get<std::string>() : j["provenance"].dump());
    if (e.prompt.empty()) R1_FAIL(user, path, ":", lineno, ": the prompt is empty (the response would answer nothing)");
    if (e.response.empty()) R1_FAIL(user, path, ":", lineno, ": the response is empty (nothing to learn)");
    out.push_back(std::move(e));
  }
  if (out.empty() && !allow_empty) R1_FAIL(user, path, ": holds no examples");
  return out;
}

std::vector<SftExample> synthetic_sft_examples(std::int64_t n, std::uint64_t seed, const ProblemMix& mix) {
  // The same mix as the synthetic pretraining corpus: reasoning first, with ordinary requests beside it
  // so the fine-tuned model also answers without a chain of thought where none is needed.
  const std::int64_t texts = n / 5, problems = n - texts;
  std::vector<SftExample> out;
  out.reserve(static_cast<std::size_t>(n));
  for (const Problem& p : generate_problems(mix, problems, seed, Split::train))
    out.push_back({p.prompt, worked_solution(p),
                   detail::concat("synthetic:", problem_kind_name(p.kind), ":", language_name(p.language), ":", p.id)});
  for (const TextExample& t : generate_text_examples(texts, seed))
    out.push_back({t.prompt, t.response, detail::concat("synthetic:", t.kind, ":", language_name(t.language))});
  return out;
}

SftSequence tokenize_example(const SftExample& e, const PromptFormat& format) {
  // Prompt and response are encoded apart so the loss mask falls exactly on the response's first token.
  SftSequence s;
  s.tokens = format.prompt(e.prompt);
  s.response_start = static_cast<std::int64_t>(s.tokens.size());
  const std::vector<std::int32_t> r = format.response(e.response);
  s.tokens.insert(s.tokens.end(), r.begin(), r.end());
  return s;
}

SftData::SftData(std::vector<SftSequence> sequences, const SftPacking& packing) : packing_(packing) {
  R1_CHECK(packing.seq_len >= 1, "seq_len ", packing.seq_len);
  const auto cap = static_cast<std::size_t>(packing.seq_len + 1);
  for (SftSequence& s : sequences) {
    R1_CHECK(s.tokens.size() >= 2 && s.response_start < static_cast<std::int64_t>(s.tokens.size()),
             "an SFT sequence needs a response and its EOS");
    if (s.tokens.size() > cap) {
      s.tokens.resize(cap);
      ++truncated_;
    }
    // The last position predicts token size-1; a prompt that fills the row leaves no response target.
    if (!packing.loss_on_prompt && s.response_start > static_cast<std::int64_t>(s.tokens.size()) - 1) {
      ++without_loss_;
      continue;
    }
    positions_ += static_cast<std::int64_t>(s.tokens.size()) - 1;
    seqs_.push_back(std::move(s));
  }
  R1_REQUIRE(!seqs_.empty(), "no SFT example keeps a response token within data.seq_len = ", packing.seq_len);
}

SftData SftData::from_config(const RunConfig& cfg, const Deck& deck) {
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(cfg.data.tokenizer);
  if (cfg.model.vocab_size < tokenizer->vocab_size())
    deck.fail("model.vocab_size", detail::concat("the tokenizer (", tokenizer->source(), ") has ", tokenizer->vocab_size(),
                                                 " tokens; the model's vocabulary must hold them all"));
  const PromptFormat format = prompt_format(cfg, deck, *tokenizer);
  const auto seed = static_cast<std::uint64_t>(cfg.run.seed);
  const bool synthetic = cfg.data.source == DataSource::synthetic;
  std::vector<SftExample> examples = synthetic ? synthetic_sft_examples(cfg.data.synthetic_examples, seed, problem_mix(cfg.data.synthetic_levels))
                                               : load_sft_jsonl(cfg.data.train_path,
                                                                /*allow_empty=*/cfg.sft.synthetic_examples > 0);
  std::vector<std::string> sources;
  for (const SftExample& e : examples) {
    const auto brace = e.provenance.find(" {");
    if (brace == std::string::npos) continue;
    const auto j = nlohmann::json::parse(e.provenance.substr(brace + 1), nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("checkpoint") && j["checkpoint"].is_string()) {
      const std::string c = j["checkpoint"].get<std::string>();
      if (std::find(sources.begin(), sources.end(), c) == sources.end()) sources.push_back(c);
    }
  }
  // R1's cold start mixes the filtered R1-Zero samples with data of "other sources": here the synthetic
  // world's worked solutions, seeded by run.seed.
  if (!synthetic && cfg.sft.synthetic_examples > 0) {
    const std::vector<SftExample> more = synthetic_sft_examples(cfg.sft.synthetic_examples, seed, problem_mix(cfg.data.synthetic_levels));
    examples.insert(examples.end(), more.begin(), more.end());
  }
  std::vector<SftSequence> seqs;
  seqs.reserve(examples.size());
  for (const SftExample& e : examples) seqs.push_back(tokenize_example(e, format));
  const SpecialIds& ids = tokenizer->special_ids();
  const SftPacking packing{.seq_len = cfg.data.seq_len,
                           .pack = cfg.sft.pack,
                           .loss_on_prompt = cfg.sft.loss_on_prompt,
                           .shuffle = cfg.data.shuffle,
                           .seed = seed,
                           .pad = ids.pad >= 0 ? ids.pad : format.end_id()};
  SftData data(std::move(seqs), packing);
  data.source_checkpoints = std::move(sources);
  data.chat_template = format.kind();
  return data;
}

SftData::Epoch SftData::pack_epoch(std::int64_t e) const {
  const std::int64_t n = examples();
  std::vector<std::int32_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (packing_.shuffle)  // Fisher-Yates; draw i of epoch e is Philox block e n + i: the same on every rank
    for (std::int64_t i = n - 1; i > 0; --i) {
      const Philox4 r = random_block(RngKey{packing_.seed, kOrderStream}, static_cast<std::uint64_t>(e * n + i));
      const std::uint64_t u = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
      std::swap(order[static_cast<std::size_t>(i)], order[u % static_cast<std::uint64_t>(i + 1)]);
    }
  Epoch ep;
  if (!packing_.pack) {
    ep.members = std::move(order);
    ep.row_start.resize(static_cast<std::size_t>(n + 1));
    std::iota(ep.row_start.begin(), ep.row_start.end(), 0);
    return ep;
  }
  // First fit: each example goes to the leftmost row with room for it. A max-tree over the free space of
  // n rows (never more are needed; untouched rows are empty) finds that row in O(log n).
  std::int64_t leaves = 1;
  while (leaves < n) leaves *= 2;
  std::vector<std::int64_t> room(static_cast<std::size_t>(2 * leaves), packing_.seq_len);
  std::vector<std::int64_t> row_of(static_cast<std::size_t>(n));
  std::int64_t rows = 0;
  for (std::int32_t x : order) {
    const std::int64_t len = length(x);
    std::size_t node = 1;
    while (node < static_cast<std::size_t>(leaves)) node = room[2 * node] >= len ? 2 * node : 2 * node + 1;
    room[node] -= len;
    const std::int64_t row = static_cast<std::int64_t>(node) - leaves;
    row_of[static_cast<std::size_t>(x)] = row;
    rows = std::max(rows, row + 1);
    for (node /= 2; node > 0; node /= 2) room[node] = std::max(room[2 * node], room[2 * node + 1]);
  }
  // Rows in order, each holding its examples in the order they were placed.
  ep.row_start.assign(static_cast<std::size_t>(rows + 1), 0);
  for (std::int32_t x : order) ++ep.row_start[static_cast<std::size_t>(row_of[static_cast<std::size_t>(x)] + 1)];
  std::partial_sum(ep.row_start.begin(), ep.row_start.end(), ep.row_start.begin());
  ep.members.resize(static_cast<std::size_t>(n));
  std::vector<std::int64_t> next(ep.row_start.begin(), ep.row_start.end() - 1);
  for (std::int32_t x : order) ep.members[static_cast<std::size_t>(next[static_cast<std::size_t>(row_of[static_cast<std::size_t>(x)])]++)] = x;
  return ep;
}

const SftData::Epoch& SftData::epoch(std::int64_t e) {
  if (auto it = cache_.find(e); it != cache_.end()) return it->second;
  Epoch packed = pack_epoch(e);
  if (e == static_cast<std::int64_t>(epoch_rows_.size()))
    epoch_rows_.push_back(static_cast<std::int64_t>(packed.row_start.size()) - 1);
  const Epoch& kept = cache_.emplace(e, std::move(packed)).first->second;
  // A step reads at most two neighbouring epochs; the others are repacked if ever read again.
  while (cache_.size() > 2) cache_.erase(std::abs(cache_.begin()->first - e) >= std::abs(cache_.rbegin()->first - e)
                                             ? cache_.begin()
                                             : std::prev(cache_.end()));
  return kept;
}

std::int64_t SftData::rows_in_epoch(std::int64_t e) {
  while (static_cast<std::int64_t>(epoch_rows_.size()) <= e) epoch(static_cast<std::int64_t>(epoch_rows_.size()));
  return epoch_rows_[static_cast<std::size_t>(e)];
}

std::int64_t SftData::rows(std::int64_t epochs) {
  std::int64_t total = 0;
  for (std::int64_t e = 0; e < epochs; ++e) total += rows_in_epoch(e);
  return total;
}

double SftData::epoch_progress(std::int64_t end) {
  std::int64_t e = 0, base = 0;
  while (end - base > rows_in_epoch(e)) base += rows_in_epoch(e++);
  return static_cast<double>(e) + static_cast<double>(end - base) / static_cast<double>(rows_in_epoch(e));
}

SftBatch SftData::batch(std::int64_t first, std::int64_t count, std::int64_t end) {
  const std::int64_t L = packing_.seq_len;
  SftBatch out;
  TokenBatch& b = out.tokens;
  b.batch = count;
  b.seq = L;
  b.ids.assign(static_cast<std::size_t>(count * L), packing_.pad);
  b.targets.assign(b.ids.size(), -1);
  b.segment_ids.assign(b.ids.size(), 0);
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t g = first + r;
    if (g >= end) continue;
    std::int64_t e = 0, base = 0;
    while (g - base >= rows_in_epoch(e)) base += rows_in_epoch(e++);
    const Epoch& ep = epoch(e);
    const std::size_t row = static_cast<std::size_t>(g - base);
    std::int64_t at = r * L;
    std::int32_t segment = 0;
    for (std::int64_t k = ep.row_start[row]; k < ep.row_start[row + 1]; ++k, ++segment) {
      const SftSequence& s = seqs_[static_cast<std::size_t>(ep.members[static_cast<std::size_t>(k)])];
      const std::int64_t n = static_cast<std::int64_t>(s.tokens.size()) - 1;
      for (std::int64_t j = 0; j < n; ++j, ++at) {
        const auto t = static_cast<std::size_t>(at);
        b.ids[t] = s.tokens[static_cast<std::size_t>(j)];
        if (packing_.loss_on_prompt || j + 1 >= s.response_start) b.targets[t] = s.tokens[static_cast<std::size_t>(j + 1)];
        b.segment_ids[t] = segment;
      }
      out.filled += n;
      ++out.examples;
    }
    // The padding after the last example is a segment of its own.
    std::fill(b.segment_ids.begin() + at, b.segment_ids.begin() + (r + 1) * L, segment);
  }
  return out;
}

}  // namespace r1
