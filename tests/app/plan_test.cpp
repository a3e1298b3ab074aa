// MemoryPlan arithmetic on a hand-sized model, and the 671B plan against the published DeepSeek-V3 setup.
#include <gtest/gtest.h>

#include "app/plan.hpp"
#include "deck/deck.hpp"
#include "parallel/pipeline_split.hpp"
#include "support/tiny_model.hpp"

namespace r1 {
namespace {

// 2 layers (dense, MoE), dim 8, 2 heads, MLA without q_lora, 4 routed experts top-2 + 1 shared, vocab 16.
ModelConfig small_model() {
  return test::tiny_model({.vocab_size = 16, .dim = 8, .dense_inter_dim = 12, .moe_inter_dim = 4, .kv_lora_rank = 4,
                           .qk_nope_head_dim = 2, .qk_rope_head_dim = 2, .v_head_dim = 2});
}
// world 8 = tensor 2 x data 2 x pipeline 2; expert 2, so EDP = 2.
parallel::Layout layout_8() { return {.world = 8, .tensor = 2, .pipeline = 2, .data = 2, .expert = 2}; }
// bf16 compute copy, fp32 moments, ZeRO-1, micro-batch 2 x 4 tokens, 4 micro-batches per step, 1F1B.
TrainSettings settings() {
  TrainSettings s;
  s.compute_bytes = 2, s.compute_copy = true, s.moment_bytes = 4, s.zero1 = true;
  s.micro_batch = 2, s.seq_len = 4, s.micro_batches = 4;
  return s;
}

// Stage 0: embedding + layer 0 (dense). Per rank: replicated norms 2D = 16, kv_a D (R_kv + d_rope) = 48,
// kv_a_norm 4; split over TP 2: q_proj D H d_qk = 64, kv_b R_kv H (d_nope + d_v) = 32, o_proj H d_v D = 32
// -> 64; dense FFN 3 D I / 2 = 144; embedding V D / 2 = 64. Dense 340, experts 0.
TEST(MemoryPlan, FirstStageHoldsEmbeddingAndDenseBlock) {
  const MemoryPlan p = plan_stage_memory(small_model(), layout_8(), settings(), 0);
  EXPECT_TRUE(p.embedding);
  EXPECT_FALSE(p.head);
  EXPECT_EQ(p.layers, 1);
  EXPECT_EQ(p.moe_layers, 0);
  EXPECT_DOUBLE_EQ(p.dense_params, 340);
  EXPECT_DOUBLE_EQ(p.expert_params, 0);
  EXPECT_DOUBLE_EQ(p.weights, 340 * 6.0);          // fp32 master + bf16 copy
  EXPECT_DOUBLE_EQ(p.grads, 340 * 4.0);            // fp32
  EXPECT_DOUBLE_EQ(p.optimizer, 2 * 4.0 * 340 / 2);  // m, v fp32, sharded over DP 2
  // Per token (bf16 elements): attention 8 + 8 + 4 + 2 + 4 + 1 x (2 x 4 + 2) + 1 x 2 = 38, FFN input and
  // norm 16, dense 3 x 12 / 2 = 18 -> 72 x 2 B + lse 4 B = 148 B; 8 tokens; 1F1B stage 0 of 2 holds 2.
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), settings(), false, Recompute::none), 148);
  EXPECT_DOUBLE_EQ(p.in_flight, 2);
  EXPECT_DOUBLE_EQ(p.activations, 2 * 8 * 148.0);
}

// Stage 1: layer 1 (MoE) + final norm + head. Dense: attention 132, router E D = 32, shared 3 D I_e / 2 =
// 48, head 64, norm 8 -> 284; routed experts 4 / EP 2 x 3 D I_e = 192.
TEST(MemoryPlan, LastStageHoldsMoeBlockAndHead) {
  const MemoryPlan p = plan_stage_memory(small_model(), layout_8(), settings(), 1);
  EXPECT_TRUE(p.head);
  EXPECT_EQ(p.moe_layers, 1);
  EXPECT_DOUBLE_EQ(p.dense_params, 284);
  EXPECT_DOUBLE_EQ(p.expert_params, 192);
  EXPECT_DOUBLE_EQ(p.weights, 476 * 6.0);
  EXPECT_DOUBLE_EQ(p.grads, 476 * 4.0);
  EXPECT_DOUBLE_EQ(p.optimizer, 2 * 4.0 * (284 / 2.0 + 192 / 2.0));  // dense over DP 2, experts over EDP 2
  // MoE block: 54 attention/norm elements, routed k/t (2 D + 3 I_e) = 28, shared 3 I_e / 2 = 6 -> 88 x 2 B,
  // fp32 lse 4 + scores 4 E + top-k 8 k = 36 -> 212 B; final norm 2 D x 2 B = 32 B; 8 tokens x 1 in flight;
  // logits transient 8 x (16 / 2 x 2 B + 8 B) = 192.
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), settings(), true, Recompute::none), 212);
  EXPECT_DOUBLE_EQ(p.in_flight, 1);
  EXPECT_DOUBLE_EQ(p.transient, 192);
  EXPECT_DOUBLE_EQ(p.activations, 8 * (212.0 + 32) + 192);
}

// DualPipeV (the model deepened to 4 layers, one per chunk) holds 2 pp + 1 = 5 chunk micro-batches on every
// stage; with the W split stage s also holds the weight-gradient inputs of s + 1 more.
TEST(MemoryPlan, DualPipeVWithTheWeightSplitHoldsTheDeferredWsInputs) {
  ModelConfig c = small_model();
  c.n_layers = 4;
  TrainSettings s = settings();
  s.schedule = PipelineSchedule::dualpipev;
  for (int stage : {0, 1}) {
    const MemoryPlan v = plan_stage_memory(c, layout_8(), s, stage);
    s.split_weight = true;
    const MemoryPlan w = plan_stage_memory(c, layout_8(), s, stage);
    s.split_weight = false;
    EXPECT_DOUBLE_EQ(v.in_flight, 5);
    EXPECT_DOUBLE_EQ(v.deferred_w, 0);
    EXPECT_DOUBLE_EQ(w.deferred_w, stage + 1);
    EXPECT_DOUBLE_EQ(w.activations - v.activations, (stage + 1) * v.activations_per_microbatch);
    EXPECT_GT(v.activations_per_microbatch, 0);
  }
}

// DualPipe at PP2: each rank holds its own stage and a second copy of the other (so both hold the whole
// model: parameters, gradients and optimizer states of both stages, embedding and head included), pp + 1 = 3
// chunk micro-batches in flight, and with the W split rank r (rank min(r, pp - 1 - r) = 0 of a V over one
// stage) the inputs of one deferred W.
TEST(MemoryPlan, DualPipeCountsTheSecondCopy) {
  TrainSettings s = settings();
  const MemoryPlan first = plan_stage_memory(small_model(), layout_8(), s, 0);
  const MemoryPlan last = plan_stage_memory(small_model(), layout_8(), s, 1);
  s.schedule = PipelineSchedule::dualpipe;
  for (int stage : {0, 1}) {
    const MemoryPlan d = plan_stage_memory(small_model(), layout_8(), s, stage);
    EXPECT_TRUE(d.embedding && d.head);
    EXPECT_EQ(d.chunks, (std::vector<int>{stage, 1 - stage}));
    EXPECT_DOUBLE_EQ(d.params(), first.params() + last.params());
    EXPECT_DOUBLE_EQ(d.grads, first.grads + last.grads);
    EXPECT_DOUBLE_EQ(d.optimizer, first.optimizer + last.optimizer);
    EXPECT_DOUBLE_EQ(d.in_flight, 3);
    s.split_weight = true;
    EXPECT_DOUBLE_EQ(plan_stage_memory(small_model(), layout_8(), s, stage).deferred_w, 1);
    s.split_weight = false;
  }
}

TEST(MemoryPlan, RecomputeKeepsLess) {
  TrainSettings s = settings();
  // Selective: attention 8 + 4 + 2 + 2, FFN input 8, routed 1 x (16 + 8), shared 2 x 4 / 2 -> 52 x 2 B + 36 B.
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::selective), 140);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::full), 16);
  s.recompute = Recompute::full;
  const MemoryPlan p = plan_stage_memory(small_model(), layout_8(), s, 1);
  EXPECT_DOUBLE_EQ(p.transient, 192 + 8 * 212.0);  // logits + the one block rebuilt at a time
  EXPECT_DOUBLE_EQ(p.activations, 8 * (16.0 + 16) + p.transient);
}

TEST(MemoryPlan, WithoutZero1StatesAreNotSharded) {
  TrainSettings s = settings();
  s.zero1 = false;
  s.moment_bytes = 2;
  EXPECT_DOUBLE_EQ(plan_stage_memory(small_model(), layout_8(), s, 1).optimizer, 2 * 2.0 * 476);
}

// [optim] moment_precision decides the bytes of a moment: bf16 (DeepSeek-V3) 2, fp32 4.
TEST(MemoryPlan, MomentBytesFollowTheDeck) {
  RunConfig cfg;
  EXPECT_EQ(train_settings(cfg, 1).moment_bytes, 4);
  cfg.optim.moment_precision = "bf16";
  EXPECT_EQ(train_settings(cfg, 1).moment_bytes, 2);
}

// Precision fp8: stage 0's linear weights (kv_a 48, the TP-split projections 64, dense FFN 144 = 256 of its 340
// parameters; not the norms or the embedding) add E4M3 copies of W and W^T, 2 B and a scale per 128x128 block each.
TEST(MemoryPlan, Fp8AddsTheLinearWeightsE4M3Copies) {
  TrainSettings s = settings();
  s.fp8 = true;
  const MemoryPlan p = plan_stage_memory(small_model(), layout_8(), s, 0);
  EXPECT_DOUBLE_EQ(p.fp8_params, 256);
  EXPECT_DOUBLE_EQ(p.weights, 340 * 6 + 256 * (2 + 8.0 / (128 * 128)));
  EXPECT_DOUBLE_EQ(plan_stage_memory(small_model(), layout_8(), settings(), 0).fp8_params, 0);
  RunConfig cfg;
  cfg.train.precision = Precision::fp8;
  EXPECT_TRUE(train_settings(cfg, 1).fp8);
  EXPECT_TRUE(train_settings(cfg, 1).compute_copy);
}

// Precision fp8 caches the routed copies' dispatched input (k/t D = 8 elements of a MoE block) in E4M3 with an
// f32 scale per 1x128 tile, 1 + 4/128 B an element instead of 2: the MoE block 212 -> 204.25 B (selective 140 ->
// 132.25 B); a dense block keeps all in the compute dtype, and full recompute the block input only.
TEST(MemoryPlan, Fp8CachesTheDispatchedExpertInputsInE4M3) {
  TrainSettings s = settings();
  s.fp8 = true;
  EXPECT_DOUBLE_EQ(fp8_activation_elements(small_model(), layout_8(), s, false, Recompute::none), 0);
  EXPECT_DOUBLE_EQ(fp8_activation_elements(small_model(), layout_8(), s, true, Recompute::none), 8);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, false, Recompute::none), 148);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::none), 204.25);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::selective), 132.25);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::full), 16);
  EXPECT_DOUBLE_EQ(fp8_activation_elements(small_model(), layout_8(), settings(), true, Recompute::none), 0);
  const MemoryPlan p = plan_stage_memory(small_model(), layout_8(), s, 1);
  EXPECT_DOUBLE_EQ(p.activations, 8 * (204.25 + 32) + 192);
}

// [train] fp8_cache_swiglu_input: the routed copies' gate_up out (k/t 2 I_e = 8 elements) joins their input in
// E4M3 and their SwiGLU out (k/t I_e = 4 elements) is not kept: 204.25 -> 212 - 8 - 2 x 16 + 1.03125 x 16 = 188.5 B
// (selective, which drops the SwiGLU out anyway: 140 - 32 + 16.5 = 124.5 B).
TEST(MemoryPlan, Fp8CachedSwigluInputsReplaceTheirOutputs) {
  TrainSettings s = settings();
  s.fp8 = true;
  s.fp8_cache_swiglu = true;
  EXPECT_DOUBLE_EQ(fp8_activation_elements(small_model(), layout_8(), s, true, Recompute::none), 16);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::none), 188.5);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::selective), 124.5);
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, false, Recompute::none), 148);
  s.fp8 = false;  // the key alone changes nothing
  EXPECT_DOUBLE_EQ(block_activation_bytes(small_model(), layout_8(), s, true, Recompute::none), 212);
}

TEST(MemoryPlan, OneRankHoldsEveryParameterOnce) {
  ModelConfig c = small_model();
  c.mtp_depth = 1;
  const parallel::Layout one{.world = 1, .data = 1};
  const MemoryPlan p = plan_stage_memory(c, one, settings(), 0);
  const ParamCount n = count_params(c);
  EXPECT_DOUBLE_EQ(p.params(), n.total + n.mtp);
}

// A grpo deck: the rollout's KV cache and the reference beside the learner. Stage 0 holds 1 MLA layer: its
// cache is 1 layer x 3 slots x 5 rows x (R_kv 4 + d_rope 2) x 2 B = 180 B; the reference is the weights again,
// 340 x 6 = 2040; the learner's activations (2 x 8 x 148 = 2368, above) outweigh the cache, and the phases take
// turns: total 2040 + 1360 + 1360 + 2040 + 2368.
TEST(MemoryPlan, GrpoAddsTheRolloutKvCacheAndTheReference) {
  MemoryPlan p = plan_stage_memory(small_model(), layout_8(), settings(), 0);
  add_rollout_memory(small_model(), settings(), {.max_batch = 3, .rows = 5, .reference = true}, p);
  EXPECT_DOUBLE_EQ(p.kv_cache, 180);
  EXPECT_DOUBLE_EQ(p.reference, 2040);
  EXPECT_DOUBLE_EQ(p.total(), 2040 + 1360 + 1360 + 2040 + 2368.0);
  add_rollout_memory(small_model(), settings(), {.max_batch = 30, .rows = 50, .reference = false}, p);
  EXPECT_DOUBLE_EQ(p.kv_cache, 18000);  // now the rollout is the peak
  EXPECT_DOUBLE_EQ(p.total(), 2040 + 1360 + 1360 + 18000.0);
}

// A GQA model's rollout caches keys and values of this rank's K/V heads: 2 x head_dim 4 x (4 K/V heads / tensor
// 2) per row, and one head per rank once tensor passes the K/V heads: 1 layer x 3 slots x 5 rows x row x 2 B.
TEST(MemoryPlan, GqaRolloutCachesThisRanksKeysAndValues) {
  ModelConfig c = small_model();
  c.arch = Arch::qwen2;
  c.dense = true;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 4;
  MemoryPlan p;
  p.layers = 1;
  add_rollout_memory(c, settings(), {.max_batch = 3, .rows = 5, .tensor = 2}, p);
  EXPECT_DOUBLE_EQ(p.kv_cache, 3 * 5 * (2 * 4 * 2) * 2.0);
  add_rollout_memory(c, settings(), {.max_batch = 3, .rows = 5, .tensor = 8}, p);
  EXPECT_DOUBLE_EQ(p.kv_cache, 3 * 5 * (2 * 4 * 1) * 2.0);
}

// The deck keys behind it: rows are sampling.max_new_tokens cut at model.max_seq_len; the learner runs
// train.micro_batch sequences of that many tokens, (prompts_per_step x group_size) / (data x micro_batch)
// micro-batches rounded up, without ZeRO-1; a pretrain deck has no rollout.
TEST(MemoryPlan, GrpoSettingsComeFromTheDeck) {
  RunConfig cfg;
  EXPECT_EQ(rollout_settings(cfg).max_batch, 0);
  cfg.run.stage = Stage::grpo;
  cfg.sampling.max_batch = 16, cfg.sampling.max_new_tokens = 48, cfg.model.max_seq_len = 256, cfg.grpo.beta_kl = 0.01;
  cfg.grpo.prompts_per_step = 4, cfg.grpo.group_size = 4, cfg.train.micro_batch = 3;
  const RolloutSettings r = rollout_settings(cfg);
  EXPECT_EQ(r.max_batch, 16);
  EXPECT_EQ(r.rows, 48);
  EXPECT_TRUE(r.reference);
  TrainSettings s = train_settings(cfg, 2);
  apply_rollout_settings(cfg, r, 2, s);
  EXPECT_EQ(s.seq_len, 48);
  EXPECT_EQ(s.micro_batch, 3);
  EXPECT_EQ(s.micro_batches, 3);  // 8 sequences per replica in micro-batches of 3
  EXPECT_FALSE(s.zero1);
  // Packed: rows of min(600, 256) = 256 tokens, 600 / 256 = 2 per micro-batch; 8 x 48 tokens fill 2 rows -> 1.
  cfg.grpo.micro_tokens = 600;
  TrainSettings packed = train_settings(cfg, 2);
  apply_rollout_settings(cfg, r, 2, packed);
  EXPECT_EQ(packed.seq_len, 256);
  EXPECT_EQ(packed.micro_batch, 2);
  EXPECT_EQ(packed.micro_batches, 1);
  cfg.grpo.micro_tokens = 100;  // rows of 100, one per micro-batch: 384 tokens fill 4
  apply_rollout_settings(cfg, r, 2, packed);
  EXPECT_EQ(packed.seq_len, 100);
  EXPECT_EQ(packed.micro_batch, 1);
  EXPECT_EQ(packed.micro_batches, 4);
  cfg.sampling.max_new_tokens = 1000;
  EXPECT_EQ(rollout_settings(cfg).rows, 256);
}

TEST(PipelineSplit, EvenOrCountingEmbeddingHeadAndMtp) {
  EXPECT_EQ(parallel::split_layers(8, 0, 4).size(), 4u);
  const auto v3 = parallel::split_layers(61, 1, 16);  // 61 + embedding + head + MTP = 64 = 16 x 4
  ASSERT_EQ(v3.size(), 16u);
  EXPECT_EQ(v3.front().count, 3);
  EXPECT_EQ(v3[1].first, 3);
  EXPECT_EQ(v3[1].count, 4);
  EXPECT_EQ(v3.back().first, 59);
  EXPECT_EQ(v3.back().count, 2);
  EXPECT_TRUE(parallel::split_layers(2, 0, 4).empty());  // would leave the first stage no layer
  EXPECT_TRUE(parallel::split_layers(7, 0, 4).empty());
}

// DeepSeek-V3 on 2048 GPUs: PP16, EP64, ZeRO-1 over DP 128, no TP (REFERENCE.md). Every stage's routed
// experts are 256 / 64 = 4 per MoE layer; the ranks together hold the model once per DP/EDP replica,
// plus the last stage's embedding copy for MTP.
TEST(MemoryPlan, DeepSeekV3On2048Gpus) {
  const Deck deck = Deck::parse("[model]\npreset = v3-671b\n", "p.deck");
  const ModelConfig c = deck.config().model;
  const parallel::Layout l{.world = 2048, .tensor = 1, .pipeline = 16, .data = 128, .expert = 64};
  TrainSettings s;
  s.compute_bytes = 2, s.compute_copy = true, s.moment_bytes = 2, s.seq_len = 4096, s.micro_batches = 120;
  s.recompute = Recompute::full;  // 1F1B keeps 16 micro-batches on stage 0: only full recompute fits 4096 tokens each
  double held = 0, worst = 0;
  for (int stage = 0; stage < 16; ++stage) {
    const MemoryPlan p = plan_stage_memory(c, l, s, stage);
    held += p.dense_params + p.expert_params * 64;
    worst = std::max(worst, p.total());
  }
  const ParamCount n = count_params(c);
  EXPECT_NEAR(held, n.total + n.mtp + static_cast<double>(c.vocab_size * c.dim), 1);
  EXPECT_LT(worst, 80e9);
}

}  // namespace
}  // namespace r1
