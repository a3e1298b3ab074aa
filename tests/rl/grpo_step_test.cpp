// Packing GRPO's rollouts into micro-batches (src/rl/grpo_step.hpp): the loss sits on the completion's
// next-token targets only, each loss token names its rollout, and rows and lengths are padded to the least
// shape the parallel layout asks for; under a token budget rollouts follow one another as segments of rows,
// and the model gives every token, and the GRPO loss, what the padded layout gives up to the GEMM's rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "model/model.hpp"
#include "rl/grpo_step.hpp"
#include "support/error_of.hpp"
#include "support/tiny_model.hpp"

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

TEST(GrpoPackSegments, RolloutsFollowOneAnotherAsSegmentsAndRowsPadAtTheirTail) {
  const std::vector<Rollout> rs = {rollout({5, 6, 7}, 2), rollout({9, 10}, 1), rollout({11, 12, 13, 14}, 3)};
  std::vector<std::int32_t> owner;
  const TokenBatch b = pack_segments(rs, 0, 3, kPad, owner, 6, 1);
  EXPECT_EQ(b.batch, 2);  // 3 + 2 tokens fill row 0; the third rollout's 4 do not fit its last one
  EXPECT_EQ(b.seq, 6);
  EXPECT_EQ(b.ids, (std::vector<std::int32_t>{5, 6, 7, 9, 10, kPad, 11, 12, 13, 14, kPad, kPad}));
  EXPECT_EQ(b.targets, (std::vector<std::int32_t>{-1, 7, -1, 10, -1, -1, -1, -1, 14, -1, -1, -1}));
  EXPECT_EQ(owner, (std::vector<std::int32_t>{-1, 0, -1, 1, -1, -1, -1, -1, 2, -1, -1, -1}));
  EXPECT_EQ(b.segment_ids, (std::vector<std::int32_t>{0, 0, 0, 1, 1, 3, 2, 2, 2, 2, 3, 3}));
  EXPECT_EQ(rollout_starts(rs, 0, 3, owner), (std::vector<std::int64_t>{0, 3, 6}));
}

TEST(GrpoPackSegments, MicroBatchesTakeWholeRolloutsInOrderUpToTheTokenBudget) {
  const std::vector<Rollout> rs = {rollout({1, 2, 3, 4}, 1), rollout({1, 2, 3}, 1), rollout({1, 2}, 1),
                                   rollout({1, 2, 3, 4, 5}, 1), rollout({1, 2}, 1)};
  // Rows of 5 tokens, 2 per micro-batch: [4] [3 2] | [5] [2].
  const PackConfig c{.tokens = 10, .row = 5};
  using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;
  EXPECT_EQ(micro_ranges(rs, c), (Ranges{{0, 3}, {3, 5}}));
  EXPECT_EQ(micro_ranges(rs, PackConfig{.micro = 2}), (Ranges{{0, 2}, {2, 4}, {4, 5}}));
  EXPECT_TRUE(micro_ranges({}, c).empty());
  const std::string e = test::error_of([&] { micro_ranges(rs, PackConfig{.tokens = 4, .row = 4}); });
  EXPECT_NE(e.find("[grpo] micro_tokens"), std::string::npos) << e;
  EXPECT_NE(e.find("rollout of 5 tokens"), std::string::npos) << e;
}

namespace {
// Every micro-batch's log-probs under `m`, and the GRPO loss over them (as grpo_step's inner epoch sums it).
struct Scored {
  std::vector<std::vector<float>> logp;  // per rollout: its completion tokens' log-probs
  double loss = 0;
};
Scored score(const Model& m, const std::vector<Rollout>& rs, const PackConfig& c, const GrpoConfig& gc) {
  std::vector<double> adv;
  for (const Rollout& r : rs) adv.push_back(r.advantage);
  std::vector<TokenBatch> batches;
  std::vector<std::vector<std::int32_t>> owners;
  std::vector<std::vector<float>> lps;
  GrpoNormaliser norm;
  for (const auto& [first, last] : micro_ranges(rs, c)) {
    owners.emplace_back();
    batches.push_back(c.tokens > 0 ? pack_segments(rs, first, last, kPad, owners.back(), c.row, 1)
                                   : pack(rs, first, last, kPad, owners.back(), 1, 1));
    const Tensor losses = m.score_tokens(m.upload(batches.back()));
    lps.emplace_back(losses.data<float>(), losses.data<float>() + losses.numel());
    for (float& v : lps.back()) v = -v;
    norm += grpo_normaliser({lps.back(), lps.back(), lps.back(), owners.back(), adv, {}}, gc);
  }
  Scored s;
  s.logp.resize(rs.size());
  for (std::size_t k = 0; k < batches.size(); ++k) {
    for (std::size_t t = 0; t < owners[k].size(); ++t)
      if (owners[k][t] >= 0) s.logp[static_cast<std::size_t>(owners[k][t])].push_back(lps[k][t]);
    // The old policy and the reference a shade apart from the new one, so that ratio and KL are not trivial.
    std::vector<float> old = lps[k], ref = lps[k];
    for (float& v : old) v *= 1.01f;
    for (float& v : ref) v *= 0.98f;
    GrpoStats st;
    grpo_token_weights({lps[k], old, ref, owners[k], adv, {}}, norm, gc, &st);
    s.loss += st.loss;
  }
  return s;
}
}  // namespace

// The largest |difference| between two scorings' log-probs of the same tokens.
double worst_gap(const Scored& a, const Scored& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.logp.size(); ++i) {
    EXPECT_EQ(a.logp[i].size(), b.logp[i].size()) << "rollout " << i;
    for (std::size_t j = 0; j < std::min(a.logp[i].size(), b.logp[i].size()); ++j)
      worst = std::max(worst, static_cast<double>(std::abs(a.logp[i][j] - b.logp[i][j])));
  }
  return worst;
}

// Rollouts of 5 to 12 tokens, padded two to a micro-batch against packed into rows of 16 tokens, two rows per
// micro-batch: every completion token gets its log-prob, as close to the padded layout's as the padded layout at
// one rollout per micro-batch is: not bit for bit, because the CPU GEMM (OpenBLAS sgemm) rounds a row's
// result differently at another row count (padded micro-batches of 1 and 2 rollouts differ as much); the
// attention of a segment sums the same keys in the same order as its padded row. The GRPO loss follows.
TEST(GrpoPackSegments, PackedLogProbsAndLossEqualThePaddedOnesToTheGemmsRounding) {
  const ModelConfig cfg = test::tiny_model({.vocab_size = 48, .dim = 32, .dense_inter_dim = 48, .moe_inter_dim = 16,
                                            .kv_lora_rank = 16, .max_seq_len = 32});
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(cfg, ps);
  ps.initialize(4, cfg.init_std);
  std::vector<Rollout> rs;
  for (int i = 0; i < 7; ++i) {
    std::vector<std::int32_t> tokens;
    for (int t = 0; t < 5 + (i * 5) % 8; ++t) tokens.push_back((7 * i + 13 * t + 1) % 47);
    rs.push_back(rollout(tokens, 2 + i % 3));
    rs.back().advantage = (i % 2 ? 1.0 : -0.5) * (1 + i);
  }
  const GrpoConfig gc;
  const PackConfig budget{.tokens = 32, .row = 16};
  ASSERT_EQ(micro_ranges(rs, budget).size(), 3u);  // 7 rollouts of 5..12 tokens in 3 micro-batches of 2 rows
  const Scored padded = score(m, rs, PackConfig{.micro = 2}, gc);
  const Scored packed = score(m, rs, budget, gc);
  const Scored single = score(m, rs, PackConfig{.micro = 1}, gc);
  for (std::size_t i = 0; i < rs.size(); ++i)
    ASSERT_EQ(packed.logp[i].size(), rs[i].tokens.size() - static_cast<std::size_t>(rs[i].prompt_len)) << i;
  const double gemm = worst_gap(padded, single), gap = worst_gap(packed, padded);
  // The GEMM's rounding between batch shapes depends on the BLAS kernels (none at all under some OpenBLAS
  // kernel families): the bound is that rounding or, where it is zero, a few f32 ulps of the largest log-prob.
  double largest = 0;
  for (const auto& lp : padded.logp)
    for (float v : lp) largest = std::max(largest, static_cast<double>(std::abs(v)));
  const double rounding = std::max(4 * gemm, 16 * std::ldexp(largest, -23));
  EXPECT_LE(gap, rounding) << "packing moves the log-probs more than the GEMM's rounding does (" << gemm << ")";
  EXPECT_LT(gap, 1e-5);
  EXPECT_NEAR(packed.loss, padded.loss, 1e-5 * std::abs(padded.loss));
  EXPECT_NE(packed.loss, 0);
  std::printf("log-prob gap: packed vs padded %.3g, padded 1 vs 2 per micro-batch %.3g; loss %.9g vs %.9g\n", gap, gemm,
              packed.loss, padded.loss);
}
