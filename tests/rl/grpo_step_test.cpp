// Packing GRPO's rollouts into micro-batches (src/rl/grpo_step.hpp): the loss sits on the completion's
// next-token targets only, each loss token names its rollout, and rows and lengths are padded to the least
// shape the parallel layout asks for.
#include <gtest/gtest.h>

#include <vector>

#include "rl/grpo_step.hpp"

using namespace r1;

namespace {
constexpr std::int32_t kPad = 0;

Rollout rollout(std::vector<std::int32_t> tokens, std::int64_t prompt_len) {
  return {.tokens = std::move(tokens), .prompt_len = prompt_len, .advantage = 0, .truncated = false};
}
}  // namespace

TEST(GrpoPack, TargetsAreTheCompletionsNextTokensAndOwnersTheirRollouts) {
  const std::vector<Rollout> rs = {rollout({5, 6, 7, 8}, 2), rollout({9, 10, 11}, 1)};
  std::vector<std::int32_t> owner;
  const TokenBatch b = pack(rs, 0, 2, kPad, owner, 1, 1);
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seq, 4);
  EXPECT_EQ(b.ids, (std::vector<std::int32_t>{5, 6, 7, 8, 9, 10, 11, kPad}));
  // The last prompt token predicts the first completion token; the last token predicts nothing.
  EXPECT_EQ(b.targets, (std::vector<std::int32_t>{-1, 7, 8, -1, 10, 11, -1, -1}));
  EXPECT_EQ(owner, (std::vector<std::int32_t>{-1, 0, 0, -1, 1, 1, -1, -1}));
}

TEST(GrpoPack, OwnersIndexTheWholeRolloutListWhateverTheFirstPacked) {
  const std::vector<Rollout> rs = {rollout({1, 2}, 1), rollout({3, 4}, 1), rollout({5, 6}, 1)};
  std::vector<std::int32_t> owner;
  const TokenBatch b = pack(rs, 2, 3, kPad, owner, 1, 1);
  EXPECT_EQ(b.ids, (std::vector<std::int32_t>{5, 6}));
  EXPECT_EQ(owner, (std::vector<std::int32_t>{2, -1}));
}

TEST(GrpoPack, AnEmptyRangeIsPaddingWithoutALossOfTheLeastShape) {
  const std::vector<Rollout> rs = {rollout({1, 2, 3}, 1)};
  std::vector<std::int32_t> owner;
  const TokenBatch b = pack(rs, 1, 1, kPad, owner, 5, 2);
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seq, 5);
  EXPECT_EQ(b.counted(), 0);
  EXPECT_EQ(b.ids, std::vector<std::int32_t>(10, kPad));
  EXPECT_EQ(owner, std::vector<std::int32_t>(10, -1));
}
