#include "data/corpus.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <numeric>
#include <sstream>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/rng.hpp"
#include "data/reasoning_world.hpp"
#include "data/token_shards.hpp"
#include "data/world_text.hpp"
#include "deck/deck.hpp"

namespace r1 {

std::vector<std::string> synthetic_documents(std::int64_t examples, std::uint64_t seed, double worked_share,
                                             const ProblemMix& mix) {
  R1_CHECK(worked_share >= 0 && worked_share <= 1, "worked_share ", worked_share, " is outside [0, 1]");
  // Four problems to one plain text: mostly reasoning, with enough ordinary language around it. Problem i
  // shows its worked solution iff its uniform draw in (0, 1] (a function of seed and i) is at most worked_share.
  const std::int64_t texts = examples / 5, problems = examples - texts;
  std::vector<std::string> docs;
  docs.reserve(static_cast<std::size_t>(examples));
  std::uint64_t i = 0;
  for (const Problem& p : generate_problems(mix, problems, seed, Split::train)) {
    const bool worked = worked_share >= 1 || random_uniform(RngKey{seed, 0x3011}, i++) <= worked_share;
    docs.push_back(chat_prompt(p.prompt) + (worked ? worked_solution(p) : direct_answer(p)));
  }
  for (const TextExample& t : generate_text_examples(texts, seed)) docs.push_back(chat_prompt(t.prompt) + t.response);
  return docs;
}

Corpus::Corpus(const std::vector<std::string>& documents) : Corpus(documents, byte_tokenizer()) {}

Corpus::Corpus(const std::vector<std::string>& documents, const Tokenizer& tokenizer) {
  const std::int32_t eos = tokenizer.special_ids().eos;
  R1_REQUIRE(eos >= 0, "the tokenizer (", tokenizer.source(), ") has no end-of-sequence token to join documents with ",
             "(<|eos|>, or tokenizer_config.json's eos_token)");
  for (const std::string& d : documents) {
    const auto t = tokenizer.encode(d);
    stream_.insert(stream_.end(), t.begin(), t.end());
    stream_.push_back(eos);
  }
  R1_REQUIRE(!stream_.empty(), "the training corpus is empty");
}

namespace {

// data.tokenizer, whose vocabulary must fit model.vocab_size.
std::unique_ptr<Tokenizer> checked_tokenizer(const RunConfig& cfg, const Deck& deck) {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(cfg.data.tokenizer);
  if (cfg.model.vocab_size < tokenizer->vocab_size())
    deck.fail("model.vocab_size", detail::concat("the tokenizer (", tokenizer->source(), ") has ", tokenizer->vocab_size(),
                                                 " tokens; the model's vocabulary must hold them all"));
  return tokenizer;
}

}  // namespace

Corpus Corpus::from_config(const RunConfig& cfg, const Deck& deck) {
  if (cfg.data.source == DataSource::synthetic)
    return Corpus(synthetic_documents(cfg.data.synthetic_examples, static_cast<std::uint64_t>(cfg.run.seed),
                                      cfg.data.synthetic_worked_share, problem_mix(cfg.data.synthetic_levels)),
                  *checked_tokenizer(cfg, deck));
  return from_file("data.train_path", cfg.data.train_path, cfg, deck);
}

Corpus Corpus::from_file(const std::string& key, const std::string& path, const RunConfig& cfg, const Deck& deck) {
  if (names_token_shards(path)) {
    Corpus c;
    c.stream_ = read_token_shards(path, cfg.model.vocab_size);
    return c;
  }
  const std::string text = read_file(path);
  std::vector<std::string> docs;
  const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
  std::istringstream in(text);
  std::string line, doc;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (jsonl) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("text") || !j["text"].is_string())
        R1_FAIL(user, path, ":", lineno, ": expected a JSON object with a string field \"text\"");
      docs.push_back(j["text"].get<std::string>());
    } else if (line.empty()) {
      if (!doc.empty()) docs.push_back(doc);
      doc.clear();
    } else {
      doc += doc.empty() ? line : "\n" + line;
    }
  }
  if (!doc.empty()) docs.push_back(doc);
  if (docs.empty()) deck.fail(key, "holds no documents");
  return Corpus(docs, *checked_tokenizer(cfg, deck));
}

std::int64_t Corpus::sequences(std::int64_t seq_len) const { return std::max<std::int64_t>(1, (tokens() - 1) / seq_len); }

TokenBatch Corpus::batch(std::int64_t first, std::int64_t count, std::int64_t seq_len, std::uint64_t seed, bool shuffle) const {
  TokenBatch b;
  b.batch = count;
  b.seq = seq_len;
  b.ids.resize(static_cast<std::size_t>(count * seq_len));
  b.targets.resize(b.ids.size());
  const std::int64_t n = sequences(seq_len);
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t g = first + r, epoch = g / n;
    std::int64_t row = g % n;
    // A seeded bijection of [0, n) per epoch: a random affine map modulo n with a stride coprime to n.
    if (shuffle) {
      const Philox4 p = random_block(RngKey{seed, 0xda7a}, static_cast<std::uint64_t>(epoch));
      std::int64_t stride = static_cast<std::int64_t>(p.v[0] % static_cast<std::uint32_t>(n)) | 1;
      while (std::gcd(stride, n) != 1) stride += 2;
      row = (row * stride + static_cast<std::int64_t>(p.v[1] % static_cast<std::uint32_t>(n))) % n;
    }
    for (std::int64_t s = 0; s < seq_len; ++s) {
      const std::int64_t at = (row * seq_len + s) % tokens();
      b.ids[static_cast<std::size_t>(r * seq_len + s)] = stream_[static_cast<std::size_t>(at)];
      b.targets[static_cast<std::size_t>(r * seq_len + s)] = stream_[static_cast<std::size_t>((at + 1) % tokens())];
    }
  }
  return b;
}

}  // namespace r1
