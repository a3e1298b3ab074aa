// The generation engine of every RL and sampling phase: batched prefill and decode over the model's MLA
// KV cache, sampling where the logits are (kernels::sample_rows; generate/sampling.hpp), stop tokens and
// length limits.
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

// Every prompt (token ids) sampled `samples_per_prompt` times; completions in prompt-major order
// (prompt 0's samples first). Sequences run in batches of at most `max_batch`: a prefill of the batch's
// prompts, then one decode step per token until every sequence has stopped, finished sequences dropping
// out of the batch. Draws are keyed by (seed, first_prompt_index + prompt index, sample index, token
// position), so the completions do not depend on max_batch or on how prompts are spread over ranks
// (give each rank's first global prompt index). A sequence ends at a stop id or after max_new_tokens,
// or when it fills the model's max_seq_len (finished_by = length).
// Under expert parallelism (Model::lockstep_group()) generate() is collective over the EP group: every
// member calls it at the same point, each with its own prompts (possibly none), and ranks that run out
// of sequences keep running idle one-token passes until the whole group is done; the completions are
// those of a one-rank run. Under tensor and pipeline parallelism the ranks of a TP group and the stages
// of a pipeline call it with the same prompts: each model pass is collective over them and gives them
// all the same logits (Model::prefill, decode), so they return the same completions.
// Each step's draws run where the logits are (kernels::sample_rows: on the GPU when the model is there):
// only the uniforms go up, and one token id, log-prob and entropy per sequence come back. A decode step of a
// small batch on one GPU (Model::decodes_on_device) runs as one CUDA graph (SamplingParams::cuda_graphs).
std::vector<Completion> generate(const Model& model, const std::vector<std::vector<std::int32_t>>& prompts,
                                 std::int64_t samples_per_prompt, const SamplingParams& params, std::int64_t max_batch,
                                 std::int64_t first_prompt_index = 0);

// completion.text = tok.decode(completion.tokens) for each completion.
void fill_text(std::vector<Completion>& completions, const Tokenizer& tok);

}  // namespace r1
