#include <gtest/gtest.h>

#include <set>

#include "data/corpus.hpp"

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

TEST(Corpus, SyntheticArithmeticIsCorrectAndSeeded) {
  const auto a = synthetic_arithmetic(20, 5), b = synthetic_arithmetic(20, 5), c = synthetic_arithmetic(20, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (const std::string& s : a) {
    int x, y, z;
    char op;
    ASSERT_EQ(std::sscanf(s.c_str(), "Compute %d %c %d * %d.", &x, &op, &y, &z), 4) << s;
    const int want = op == '+' ? x + y * z : x - y * z;
    EXPECT_NE(s.find("Answer: " + std::to_string(want)), std::string::npos) << s;
  }
}
