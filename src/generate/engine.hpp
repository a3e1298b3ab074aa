// The generation engine of every RL and sampling phase: batched prefill and decode over the model's KV
// cache (MLA latents, or grouped-query attention's keys and values), sampling where the logits are
// (kernels::sample_rows; generate/sampling.hpp), stop tokens and length limits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "generate/sampling.hpp"
#include "model/model.hpp"

namespace r1 {

class Tokenizer;

enum class FinishReason { stop, length };
const char* finish_reason_name(FinishReason r);

struct Completion {
  std::int64_t prompt_index = 0;  // index into the prompts given to generate()
  std::int64_t sample_index = 0;  // 0 .. samples_per_prompt - 1
  std::vector<std::int32_t> tokens;  // generated tokens; a stop token that ended it is included
  std::string text;                  // filled by fill_text()
  FinishReason finished_by = FinishReason::length;
  std::vector<float> logprobs;       // per generated token: SampledToken::logprob under the sampling policy
  // Per generated token: log softmax(logits)[token] at temperature 1 over the whole vocabulary, from the logits
  // it was drawn from: the policy the learner scores (Model::score_tokens), so that GRPO can compare the two.
  std::vector<float> policy_logprobs;
  std::vector<float> entropies;      // per generated token: SampledToken::entropy
  // With SamplingParams::record_experts: [rows][L_moe][k], rows = the prompt's tokens and every generated
  // token but the last (each token the model was fed), for each of the trunk's MoE layers the k experts the
  // router chose (-1 for layers another pipeline stage runs). Empty otherwise.
  std::vector<std::int16_t> experts;
};

// What a generate() call ran: its passes and how full its decode steps were.
struct GenerateStats {
  std::int64_t prefills = 0;      // prefill passes (a decode step that carried a prefill chunk counts here too)
  std::int64_t prefilled = 0;     // prompts run through them (continuous: each prompt once for all its samples)
  std::int64_t decode_steps = 0;  // decode passes
  std::int64_t slot_steps = 0;    // sequences decoded, summed over the decode steps (/ decode_steps: mean live slots)
  std::int64_t idle_passes = 0;   // one-token passes of a rank without work (expert parallelism, Lockstep)
  std::int64_t mixed_steps = 0;   // decode steps that also ran a chunk of a chunked prefill (paged cache)
  std::int64_t graph_captures = 0;  // CUDA graphs captured for decode steps
  // Continuous batching's paged cache (SamplingParams::kv_block_size > 0; zero otherwise): its tokens per
  // block and pool blocks, the most blocks sequences held at once, the sequences preempted when a decode
  // step found no free block, and the preempted sequences re-prefilled on readmission.
  std::int64_t block_size = 0, pool_blocks = 0, peak_blocks = 0, preemptions = 0, resumed = 0;
};

// Every prompt (token ids) sampled `samples_per_prompt` times; completions in prompt-major order
// (prompt 0's samples first). At most `max_batch` sequences run at once, each in a slot of the KV cache.
// SamplingParams::batching chooses how slots are filled:
// - continuous: the sequences wait in a queue (prompt-major); a slot freed by a finished sequence is
//   refilled at once, its cache rows overwritten by the next sequence's prompt while the other slots keep
//   theirs. A tick runs one pass: a prefill of the prompts that newly admitted sequences need (each prompt
//   once for all its samples: its cache rows are copied into every sample's slot and each sample's first
//   draw is made from the prompt's last-position logits), or else a decode step over every live slot.
//   With SamplingParams::kv_block_size > 0 the cache is paged (KvCache): a slot takes blocks as its sequence
//   grows and frees them when it finishes, from a pool of kv_cache_tokens (generate/kv_blocks.hpp), so
//   max_batch may exceed what the pool holds at full length. A sequence is admitted when the free blocks
//   hold its rows; when a decode step finds no free block for a sequence's next row, the newest running
//   sequences are preempted (their blocks freed, back to the queue's head) and later re-prefilled with
//   their prompt and the tokens they had fed, never failing. A prompt's rows are copied into each sample's
//   own blocks.
// - static: a batch of max_batch sequences is prefilled (each sample of a prompt on its own), then decoded
//   until its last sequence stops, finished sequences dropping out; then the next batch.
// Draws are keyed by (seed, first_prompt_index + prompt index, sample index, token position), so the
// completions do not depend on the batching mode, max_batch, slot order or how prompts are spread over
// ranks (give each rank's first global prompt index). A sequence ends at a stop id or after max_new_tokens
// (or its SamplingParams::sequence_limits entry), or when it fills the model's max_seq_len (finished_by = length).
// Under expert parallelism (Model::lockstep_group()) generate() is collective over the EP group: every
// member calls it at the same point, each with its own prompts (possibly none), and ranks that run out
// of sequences keep running idle one-token passes until the whole group is done; the completions are
// those of a one-rank run. Under tensor and pipeline parallelism the ranks of a TP group and the stages
// of a pipeline call it with the same prompts: each model pass is collective over them and gives them
// all the same logits (Model::prefill, decode), so they return the same completions.
// Each step's draws run where the logits are (kernels::sample_rows: on the GPU when the model is there):
// only the uniforms go up, and one token id, log-prob and entropy per sequence come back. A decode step of a
// small batch on one GPU (Model::decodes_on_device) runs as one CUDA graph (SamplingParams::cuda_graphs),
// captured again only when the cache's slots change (a refill keeps it).
// `stats`, when given, receives what ran.
std::vector<Completion> generate(const Model& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                 std::int64_t samples_per_prompt, const SamplingParams& params, std::int64_t max_batch,
                                 std::int64_t first_prompt_index = 0, GenerateStats* stats = nullptr);

// completion.text = tok.decode(completion.tokens) for each completion.
void fill_text(std::vector<Completion>& completions, const Tokenizer& tok);

}  // namespace r1
