// What the sampling stages (evaluate, rejection_sampling) share: the policy read from [checkpoint] load,
// the deck's sampling settings and prompt template, each rank's share of the prompts, and chunked
// generation whose samples do not depend on the rank layout.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/chat_template.hpp"
#include "data/reasoning_world.hpp"
#include "generate/engine.hpp"
#include "model/model.hpp"
#include "stages/stage.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {

struct Policy {
  ModelConfig cfg;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ParamStore> params;
  std::unique_ptr<Model> model;
  std::filesystem::path checkpoint;  // absolute step directory
  std::int64_t step = 0;             // the checkpoint's step
  SamplingParams sampling;
  std::int64_t samples_per_prompt = 1, max_batch = 1;
  std::unique_ptr<PromptFormat> format;  // [data] chat_template on tok
};

// The deck's [sampling] settings (temperature, top_p, top_k, max_new_tokens, cuda_graphs), the format's stop
// ids (its end token, the EOS, </answer>), draws over the tokenizer's ids keyed by run.seed; validated.
SamplingParams sampling_params(const RunConfig& cfg, const PromptFormat& format);

// The model with the weights of the checkpoint [checkpoint] load names, the tokenizer, and the deck's
// sampling settings and template (stop at the template's end token, the EOS and </answer>; draws keyed by
// run.seed and global prompt index).
Policy load_policy(const StageEnv& env, const std::string& stage);

// Rank `rank`'s contiguous share [first, last) of n prompts: the first n % world ranks take one more.
struct Share {
  std::int64_t first = 0, last = 0;
};
Share rank_share(std::int64_t n, int rank, int world);

// The completion's text as a response: after what the prompt opened (format.opened()), without the end
// token or EOS that ended it (</answer> stays: it is part of the answer format).
std::string response_text(const Completion& c, const PromptFormat& format);

// Samples problems[share.first, share.last) (global indices) in chunks of about max_batch sequences and
// hands each chunk's completions to `consume` (prompt_index counts from `first` of the chunk), so memory
// stays bounded however many prompts a rank owns. Rank 0 logs progress as `stage`.
void sample_in_chunks(const Policy& policy, const std::vector<Problem>& problems, Share share, const std::string& stage,
                      const std::function<void(std::int64_t first, std::vector<Completion>& completions)>& consume);

}  // namespace r1
