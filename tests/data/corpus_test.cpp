#include <gtest/gtest.h>

#include <set>

#include "data/corpus.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace r1;

TEST(Corpus, SequencesAreShiftedTokenStreamRows) {
  const Corpus c({"ab", "cde"});  // stream: a b EOS c d e EOS
  EXPECT_EQ(c.tokens(), 7);
  const TokenBatch b = c.batch(0, 2, 3, 1, false);
  EXPECT_EQ(b.ids, (std::vector<std::int32_t>{'a', 'b', kTokEos, 'c', 'd', 'e'}));
  EXPECT_EQ(b.targets, (std::vector<std::int32_t>{'b', kTokEos, 'c', 'd', 'e', kTokEos}));
  EXPECT_EQ(b.counted(), 6);
}

TEST(Corpus, ShuffledEpochsArePermutationsAndReproducible) {
  // 7 distinct characters + EOS per document: every 8-token row is one document, so rows are distinct.
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%07d", i);
    docs.emplace_back(buf);
  }
  const Corpus c(docs);
  const std::int64_t n = c.sequences(8);
  std::set<std::vector<std::int32_t>> rows;
  for (std::int64_t g = 0; g < n; ++g) rows.insert(c.batch(g, 1, 8, 7, true).ids);
  EXPECT_EQ(static_cast<std::int64_t>(rows.size()), n);  // every row once per epoch
  EXPECT_EQ(c.batch(3, 4, 8, 7, true).ids, c.batch(3, 4, 8, 7, true).ids);
  EXPECT_NE(c.batch(0, 4, 8, 7, true).ids, c.batch(0, 4, 8, 8, true).ids);
  // A micro-batch of rows [2, 6) equals rows 2..5 drawn one by one: any split of the global batch agrees.
  const TokenBatch whole = c.batch(2, 4, 8, 7, true);
  for (int r = 0; r < 4; ++r) {
    const TokenBatch one = c.batch(2 + r, 1, 8, 7, true);
    EXPECT_TRUE(std::equal(one.ids.begin(), one.ids.end(), whole.ids.begin() + r * 8));
  }
}

TEST(Corpus, SyntheticDocumentsAreWorkedSolutionsAndTextInBothLanguages) {
  const auto a = synthetic_documents(40, 5), b = synthetic_documents(40, 5), c = synthetic_documents(40, 6);
  ASSERT_EQ(a.size(), 40u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  int worked = 0, spanish = 0;
  for (const std::string& d : a) {
    EXPECT_TRUE(d.starts_with("<|user|>")) << d;
    EXPECT_NE(d.find("<|assistant|>"), std::string::npos) << d;
    worked += d.find("<|assistant|><think>") != std::string::npos && d.ends_with("</answer>");
    spanish += d.find(" es ") != std::string::npos || d.find("¿") != std::string::npos;
  }
  EXPECT_EQ(worked, 32);  // four worked solutions to one plain text
  EXPECT_GT(spanish, 8);
}

TEST(Corpus, WorkedShareShowsTheRestAsDirectAnswers) {
  const auto full = synthetic_documents(400, 5), some = synthetic_documents(400, 5, 0.25), none = synthetic_documents(400, 5, 0.0);
  ASSERT_EQ(some.size(), full.size());
  EXPECT_EQ(some, synthetic_documents(400, 5, 0.25));
  int worked = 0, direct = 0, none_worked = 0;
  for (std::size_t i = 0; i < 320; ++i) {  // the problems come first, then the 80 plain texts
    const bool is_direct = some[i].find("<|assistant|><think></think><answer>") != std::string::npos;
    worked += some[i] == full[i] && !is_direct;
    direct += is_direct;
    none_worked += none[i] == full[i];
    if (is_direct) {  // the same prompt and answer as the worked document, without the thought
      const auto answer = full[i].substr(full[i].rfind("<answer>"));
      EXPECT_TRUE(some[i].ends_with(answer)) << some[i];
      EXPECT_EQ(some[i].substr(0, some[i].find("<|assistant|>")), full[i].substr(0, full[i].find("<|assistant|>")));
    }
  }
  EXPECT_EQ(worked + direct, 320);  // every problem is one or the other
  EXPECT_GT(worked, 50);             // ~80 of 320 expected
  EXPECT_LT(worked, 115);
  EXPECT_EQ(none_worked, 0);
  EXPECT_TRUE(std::equal(full.begin() + 320, full.end(), some.begin() + 320));  // plain texts are unchanged
}

TEST(Corpus, TokenizerIsPluggable) {
  const Tokenizer bpe = train_bpe(synthetic_documents(100, 1), 400, r1_special_tokens());
  const std::vector<std::string> docs = synthetic_documents(10, 2);
  const Corpus bytes(docs), merged(docs, bpe);
  EXPECT_LT(merged.tokens(), bytes.tokens() * 2 / 3);
  const TokenBatch b = merged.batch(0, 1, 16, 1, false);
  EXPECT_EQ(b.ids[0], bpe.special_ids().user);  // the first document opens with <|user|>
  for (std::int32_t id : b.ids) EXPECT_LT(id, bpe.vocab_size());
}
