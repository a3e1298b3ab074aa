#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace r1;

namespace {

std::vector<std::string> split(std::string_view text, PreTokenizer rules) {
  std::vector<std::string> out;
  for (auto p : pretokenize(text, rules)) out.emplace_back(p);
  return out;
}

std::string random_bytes(std::uint64_t seed, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<char>(random_block(RngKey{seed, 1}, i).v[0] & 0xff);
  return s;
}

}  // namespace

TEST(PreTokenize, R1hpcRulesSplitWordsDigitsPunctuationAndSpaces) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Hello, world!", PreTokenizer::r1hpc), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split("12 + 345", PreTokenizer::r1hpc), (V{"1", "2", " +", " 3", "4", "5"}));
  // As GPT-2: a whitespace run gives up its last character to the next piece, even a newline.
  EXPECT_EQ(split("a  b\n\nc ", PreTokenizer::r1hpc), (V{"a", " ", " b", "\n", "\n", "c", " "}));
  EXPECT_EQ(split("año ¿qué?", PreTokenizer::r1hpc), (V{"año", " ¿qué", "?"}));
  EXPECT_EQ(split("it's", PreTokenizer::r1hpc), (V{"it", "'", "s"}));
}

TEST(PreTokenize, Gpt2RulesKeepDigitRunsAndContractions) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("it's 345 apples", PreTokenizer::gpt2), (V{"it", "'s", " 345", " apples"}));
  EXPECT_EQ(split("we'll\tgo", PreTokenizer::gpt2), (V{"we", "'ll", "\t", "go"}));
}

TEST(ByteLevel, AlphabetRoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(from_byte_level(to_byte_level(all)), all);
  EXPECT_EQ(to_byte_level(" a\n"), "\xC4\xA0" "a" "\xC4\x8A");  // "Ġ", "a", "Ċ" as in GPT-2's vocabulary
  EXPECT_FALSE(from_byte_level("\xE2\x82\xAC").has_value());  // "€" is not in the alphabet
}

TEST(BpeTrain, LearnsMostFrequentPairsFirstWithDeterministicTies) {
  // Pieces: "aaab" x1, " ab" x3, "ab" x1. Pair counts: (a,b) 5, (' ',a) 3, (a,a) 2 -> merge "ab"; then
  // (' ',ab) 3, (a,a) 1, (a,ab) 1 -> merge " ab"; then no pair occurs twice, so training stops early.
  const Tokenizer t = train_bpe({"aaab ab ab ab", "ab"}, 300, {});
  ASSERT_EQ(t.merges().size(), 2u);
  EXPECT_EQ(t.vocab_size(), 258);
  EXPECT_EQ(t.token(256), "ab");
  EXPECT_EQ(t.token(257), " ab");
  EXPECT_EQ(t.encode("aaab ab"), (std::vector<std::int32_t>{'a', 'a', 256, 257}));
  // "xy" and "yx" both occur twice: the tie goes to the pair of smaller ids, (x, y).
  const Tokenizer u = train_bpe({"xy", "yx", "xy", "yx"}, 257, {});
  ASSERT_EQ(u.merges().size(), 1u);
  EXPECT_EQ(u.token(256), "xy");
}

TEST(BpeTrain, StopsWhenNoPairRepeats) {
  const Tokenizer t = train_bpe({"abc"}, 1000, {});
  EXPECT_EQ(t.vocab_size(), 256);
  EXPECT_THROW(train_bpe({"abc"}, 100, {}), Error);
}

TEST(Tokenizer, RoundTripsRandomBytesAndInvalidUtf8) {
  std::vector<std::string> corpus;
  for (int i = 0; i < 20; ++i) corpus.push_back("First, 7 times 3 is 21. Primero, 7 por 3 es 21. ¿Cuántas manzanas? " + std::to_string(i));
  const Tokenizer bpe = train_bpe(corpus, 400, r1_special_tokens());
  const Tokenizer byte = byte_tokenizer();
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    const std::string s = random_bytes(seed, 1 + seed * 7);
    EXPECT_EQ(bpe.decode(bpe.encode(s)), s) << seed;
    EXPECT_EQ(byte.decode(byte.encode(s)), s) << seed;
  }
  const std::string invalid = "\xff\xfe<think>\xc3(</think>\x80";
  EXPECT_EQ(bpe.decode(bpe.encode(invalid)), invalid);
  EXPECT_LT(bpe.encode(corpus[0]).size(), corpus[0].size() / 2);  // merges compress the text they were trained on
}

TEST(Tokenizer, SpecialTokensAreWholeAndHaveFixedIds) {
  const Tokenizer byte = byte_tokenizer();
  EXPECT_EQ(byte.vocab_size(), kByteVocab);
  EXPECT_EQ(byte.special_ids().eos, kTokEos);
  EXPECT_EQ(byte.special_ids().pad, kTokPad);
  const SpecialIds& ids = byte.special_ids();
  EXPECT_EQ((std::vector<std::int32_t>{ids.think, ids.think_end, ids.answer, ids.answer_end, ids.user, ids.assistant}),
            (std::vector<std::int32_t>{258, 259, 260, 261, 262, 263}));
  EXPECT_EQ(byte.encode("<think>x</think>"), (std::vector<std::int32_t>{258, 'x', 259}));

  const Tokenizer bpe = train_bpe({"<think>think think</think><answer>42</answer><|eos|>", "think think"}, 300, r1_special_tokens());
  for (std::size_t k = 0; k < r1_special_tokens().size(); ++k)
    EXPECT_EQ(bpe.special_id(r1_special_tokens()[k]), static_cast<std::int32_t>(256 + k));
  const auto ids2 = bpe.encode("a<answer>b</answer><|eos|>");
  EXPECT_EQ(ids2[1], bpe.special_ids().answer);
  EXPECT_EQ(ids2.back(), bpe.special_ids().eos);
  for (std::int32_t id : bpe.encode("think think")) EXPECT_FALSE(bpe.is_special(id));  // merges never build a special
  EXPECT_THROW(bpe.special_id("<|system|>"), Error);
}

TEST(Tokenizer, LoadTokenizerByteSpec) {
  const auto t = load_tokenizer("byte");
  EXPECT_EQ(t->vocab_size(), kByteVocab);
  EXPECT_EQ(t->encode("hi"), (std::vector<std::int32_t>{'h', 'i'}));
  EXPECT_THROW(load_tokenizer("/no/such/tokenizer.json"), Error);
}
