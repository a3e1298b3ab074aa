// The sections of the training stages: [data], [optim], [train] and [sft].
#pragma once
#include <cstdint>
#include <string>

#include "config/keys.hpp"

namespace r1 {

enum class DataSource { files, synthetic };
constexpr auto choice_words(DataSource) {
  return std::to_array<ChoiceWord<DataSource>>({{"files", DataSource::files}, {"synthetic", DataSource::synthetic}});
}

// How a question is laid out before its response (data/chat_template.hpp): a model family's chat template
// by its special tokens, or r1hpc's own (byte tokenizer and BPE trained here); auto picks by the tokenizer.
enum class ChatTemplate { automatic, deepseek_r1, chatml, llama3, r1hpc_chat, r1_zero, raw };
constexpr auto choice_words(ChatTemplate) {
  return std::to_array<ChoiceWord<ChatTemplate>>({{"auto", ChatTemplate::automatic},
                                                  {"deepseek-r1", ChatTemplate::deepseek_r1},
                                                  {"chatml", ChatTemplate::chatml},
                                                  {"llama3", ChatTemplate::llama3},
                                                  {"r1hpc-chat", ChatTemplate::r1hpc_chat},
                                                  {"r1-zero", ChatTemplate::r1_zero},
                                                  {"raw", ChatTemplate::raw}});
}

#define R1_DATA_KEYS(KEY)                                                                                             \
  KEY(choice, source, DataSource::files, (), "train on train_path/eval_path, or on the built-in reasoning tasks")     \
  KEY(input, train_path, "", (), "training data: text, JSONL, or HDF5 token shards (file or directory)")               \
  KEY(input, eval_path, "", (), "evaluate: JSONL problems with answers; pretrain: held-out text (as train_path)")                       \
  KEY(integer, seq_len, 256, (1, 1 << 24), "tokens per training sequence (examples are packed)")                      \
  KEY(text, tokenizer, "byte", (), "Hugging Face tokenizer.json, or 'byte' for the byte-level tokenizer")             \
  KEY(choice, chat_template, ChatTemplate::automatic, (),                                                             \
      "prompt layout of sft, rejection_sampling, evaluate, grpo and reward_model; auto: the tokenizer's family "      \
      "(deepseek-r1, chatml, llama3), else r1hpc-chat")                                                               \
  KEY(integer, synthetic_examples, 20000, (1, kNoMax), "examples the synthetic generator makes (source = synthetic)") \
  KEY(real, synthetic_worked_share, 1, (0, 1),                                                                        \
      "share of the synthetic problems shown with their worked solution; the others show the answer alone "           \
      "(<think></think><answer>X</answer>): below 1, a base that mostly answers without reasoning (R1-Zero's start)") \
  KEY(ints, synthetic_levels, {1}, (0, 1000),                                                                        \
      "relative weights of the built-in tasks' difficulty levels 1..4 (e.g. 1,1,1,1; 0,0,1: level 3 only); "      \
      "1: level 1 only, the tasks as first built")                                                                  \
  KEY(choice, preference_pairs, "surface", ("surface", "content"),                                                  \
      "synthetic preference pairs (reward_model, RL for all scenarios): surface (chosen and rejected differ in "     \
      "politeness, hedging or refusal) or content (same template, other content: a wrong fact or translation, the "  \
      "other language, an unsafe ending after a safe opening)")                                                      \
  KEY(real, preference_label_noise, 0, (0, 0.5), "share of synthetic preference pairs with chosen and rejected swapped (annotator disagreement)") \
  KEY(flag, shuffle, true, (), "shuffle example order each epoch (seeded by run.seed)")

struct DataConfig {
  R1_CONFIG_MEMBERS(R1_DATA_KEYS)
  bool operator==(const DataConfig&) const = default;
};

enum class LrShape { cosine, wsd, constant };
constexpr auto choice_words(LrShape) {
  return std::to_array<ChoiceWord<LrShape>>(
      {{"cosine", LrShape::cosine}, {"wsd", LrShape::wsd}, {"constant", LrShape::constant}});
}

#define R1_OPTIM_KEYS(KEY)                                                                                             \
  KEY(real, lr, 3e-4, (0, 1), "peak learning rate")                                                                    \
  KEY(real, min_lr, 3e-5, (0, 1), "learning rate at the end of the decay")                                             \
  KEY(real, beta1, 0.9, (0, 0.999999), "AdamW first-moment decay")                                                     \
  KEY(real, beta2, 0.95, (0, 0.999999), "AdamW second-moment decay")                                                   \
  KEY(real, eps, 1e-8, (1e-30, 1), "AdamW epsilon")                                                                    \
  KEY(real, weight_decay, 0.1, (0, 10), "decoupled weight decay (not on norms, biases and embeddings)")                \
  KEY(real, grad_clip, 1.0, (0, 1e6), "global gradient-norm clip; 0: none")                                            \
  KEY(choice, schedule, LrShape::cosine, (), "learning-rate shape after warmup")                                       \
  KEY(integer, warmup_steps, 100, (0, kNoMax), "linear warmup steps from 0 to lr")                                     \
  KEY(integer, decay_steps, 0, (0, kNoMax), "length of the decay to min_lr (wsd: the final one); 0: to run.max_steps") \
  KEY(choice, moment_precision, "fp32", ("fp32", "bf16"), "storage type of the AdamW moments (bf16: as DeepSeek-V3)")

struct OptimConfig {
  R1_CONFIG_MEMBERS(R1_OPTIM_KEYS)
  bool operator==(const OptimConfig&) const = default;
};

// `selective` (DeepSeek-V3's recompute of the norms, MLA up-projections and SwiGLU) is not offered to
// training yet; the memory planner (app/plan.cpp) estimates it.
enum class Recompute { none, selective, full };
constexpr auto choice_words(Recompute) {
  return std::to_array<ChoiceWord<Recompute>>({{"none", Recompute::none}, {"full", Recompute::full}});
}
// fp8: DeepSeek-V3's recipe (model/linear.hpp): the linear layers' three GEMMs in block-scaled E4M3 with FP32
// accumulation, everything else in bf16.
enum class Precision { fp32, bf16, fp8 };
constexpr auto choice_words(Precision) {
  return std::to_array<ChoiceWord<Precision>>(
      {{"fp32", Precision::fp32}, {"bf16", Precision::bf16}, {"fp8", Precision::fp8}});
}

// Which fused attention runs on a GPU (kernels::AttentionBackend): own kernel, or cuDNN's (deterministic dq, or
// atomic f32 dq); what cuDNN does not take runs the own kernel; auto: cudnn where the build has cuDNN, else own.
// No effect on the CPU.
enum class AttentionImpl { automatic, own, cudnn, cudnn_nondeterministic };
constexpr auto choice_words(AttentionImpl) {
  return std::to_array<ChoiceWord<AttentionImpl>>({{"auto", AttentionImpl::automatic},
                                                   {"own", AttentionImpl::own},
                                                   {"cudnn", AttentionImpl::cudnn},
                                                   {"cudnn_nondeterministic", AttentionImpl::cudnn_nondeterministic}});
}

// Precision fp8: a tile's FP32 scale as its max-abs / 448, or rounded up to a power of two (DeepSeek-V3's option).
enum class Fp8Scale { fp32, pow2 };
constexpr auto choice_words(Fp8Scale) {
  return std::to_array<ChoiceWord<Fp8Scale>>({{"fp32", Fp8Scale::fp32}, {"pow2", Fp8Scale::pow2}});
}

// What a diverged step does (train/divergence_guard.hpp): the run stops before committing it, or returns to
// the last good state and goes on with the next step's data.
enum class DivergencePolicy { stop, skip };
constexpr auto choice_words(DivergencePolicy) {
  return std::to_array<ChoiceWord<DivergencePolicy>>({{"stop", DivergencePolicy::stop}, {"skip", DivergencePolicy::skip}});
}

#define R1_TRAIN_KEYS(KEY)                                                                                 \
  KEY(integer, micro_batch, 1, (1, 1 << 20), "sequences per rank per forward/backward pass")               \
  KEY(integer, global_batch, 0, (0, kNoMax),                                                               \
      "sequences per optimizer step (multiple of micro_batch x data); 0: one micro-batch per replica")     \
  KEY(choice, recompute, Recompute::none, (), "activation recomputation in the backward pass")             \
  KEY(choice, precision, Precision::fp32, (),                                                              \
      "compute precision of the GEMMs (master weights stay fp32); fp8: the attention projections' and "    \
      "experts' GEMMs in block-scaled E4M3 as DeepSeek-V3 (arch = mla), the rest in bf16")                \
  KEY(choice, fp8_scale, Fp8Scale::fp32, (),                                                               \
      "precision fp8: each tile's scale as max-abs / 448 (fp32), or rounded up to a power of two (pow2; "   \
      "then the backward's expert dispatch also sends FP8)")                                               \
  KEY(flag, fp8_cache_swiglu_input, false, (),                                                             \
      "precision fp8: keep the routed experts' SwiGLU input as E4M3 tiles for the backward and recompute "   \
      "its output there (DeepSeek-V3's storage; about a third of those bytes, a coarser backward)")         \
  KEY(choice, attention, AttentionImpl::automatic, (),                                                     \
      "GPU fused attention: own kernel, or cuDNN's (cudnn: the same bits run to run, 2.4x own's speed on "  \
      "the bench shape; cudnn_nondeterministic: atomic dq); shapes cuDNN does not take run own; auto: "     \
      "cudnn where the build has cuDNN, else own")                                                          \
  KEY(integer, log_every, 10, (1, kNoMax), "steps between progress lines")                                 \
  KEY(integer, eval_every, 0, (0, kNoMax), "pretrain: steps between held-out losses (data.eval_path); 0: never") \
  KEY(integer, eval_sequences, 64, (1, kNoMax), "pretrain: held-out sequences per evaluation (the first ones)")  \
  KEY(choice, divergence_policy, DivergencePolicy::stop, (),                                               \
      "a diverged step (non-finite gradients or weights, a loss spike, weight-norm growth): stop before "  \
      "committing it (exit 4), or skip it (not applied, or the last checkpoint reloaded) and go on")       \
  KEY(real, loss_spike_factor, 0, (0, 1e6),                                                                \
      "a next-token step whose loss exceeds this multiple of the mean of the last 10 applied steps' "      \
      "diverged (not applied); 0: off, else > 1")                                                          \
  KEY(real, max_weight_norm_growth, 2, (0, 1e6),                                                           \
      "weights whose L2 norm grew more than this factor since the last check diverged; 0: off, else > 1")  \
  KEY(integer, weight_check_every, 10, (1, kNoMax),                                                        \
      "steps between checks of the weights (finite, norm growth), and at every due checkpoint and the end")

struct TrainConfig {
  R1_CONFIG_MEMBERS(R1_TRAIN_KEYS)
  bool operator==(const TrainConfig&) const = default;
};

#define R1_SFT_KEYS(KEY)                                                                              \
  KEY(integer, epochs, 2, (1, 10000), "passes over the training data")                                \
  KEY(flag, loss_on_prompt, false, (), "also train on prompt tokens (default: response tokens only)") \
  KEY(flag, pack, true, (), "pack several examples per sequence, attention kept within each")         \
  KEY(integer, synthetic_examples, 0, (0, kNoMax),                                                    \
      "with data.source = files: add this many synthetic worked solutions (cold start's other sources)")

struct SftConfig {
  R1_CONFIG_MEMBERS(R1_SFT_KEYS)
  bool operator==(const SftConfig&) const = default;
};

}  // namespace r1
