#include "stages/sampling_stage.hpp"

#include <algorithm>

#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "run/host_reduce.hpp"
#include "run/metrics.hpp"
#include "train/checkpoints.hpp"

namespace r1 {

SamplingParams sampling_params(const RunConfig& cfg, const PromptFormat& format) {
  const Tokenizer& tok = format.tokenizer();
  SamplingParams sp;
  sp.temperature = static_cast<float>(cfg.sampling.temperature);
  sp.top_p = static_cast<float>(cfg.sampling.top_p);
  sp.top_k = cfg.sampling.top_k;
  sp.max_new_tokens = cfg.sampling.max_new_tokens;
  sp.stop_ids = format.stop_ids();
  sp.vocab_limit = tok.vocab_size();
  sp.seed = static_cast<std::uint64_t>(cfg.run.seed);
  sp.cuda_graphs = cfg.sampling.cuda_graphs;
  sp.batching = cfg.sampling.batching;
  sp.kv_block_size = cfg.sampling.kv_block_size;
  sp.kv_cache_tokens = cfg.sampling.kv_cache_tokens;
  sp.prefill_chunk = cfg.sampling.prefill_chunk;
  validate(sp);
  return sp;
}

Policy load_policy(const StageEnv& env, const std::string& stage) {
  const Deck& deck = env.deck;
  Policy pol;
  pol.cfg = env.cfg.model;
  pol.tok = load_tokenizer(env.cfg.data.tokenizer);
  if (pol.tok->vocab_size() > pol.cfg.vocab_size)
    deck.fail("model.vocab_size", detail::concat("the tokenizer has ", pol.tok->vocab_size(), " tokens; the model must have at least as many"));
  pol.format = std::make_unique<PromptFormat>(prompt_format(env.cfg, deck, *pol.tok));
  const std::filesystem::path ckpt = weights_checkpoint(deck, env.cfg);
  if (ckpt.empty()) deck.fail("checkpoint.load", detail::concat("names no checkpoint yet; ", stage, " samples from a trained model"));
  pol.checkpoint = std::filesystem::absolute(ckpt).lexically_normal();
  pol.params = std::make_unique<ParamStore>(env.ctx, env.compute_dtype);
  const ModelGroups groups{.tp = env.comms->tp.get(), .ep = env.comms->ep.get(), .pp = env.comms->pp.get(),
                           .virtual_stages = pipeline_chunks_per_rank(env.cfg.parallel.schedule, env.cfg.parallel.virtual_stages),
                           .placement = chunk_placement(env.cfg.parallel.schedule)};
  pol.model = std::make_unique<Model>(pol.cfg, *pol.params, groups);
  pol.step = ckpt::load_train_state(pol.checkpoint, ckpt::LoadMode::weights, *pol.params, nullptr).step;
  pol.sampling = sampling_params(env.cfg, *pol.format);
  pol.samples_per_prompt = env.cfg.sampling.samples_per_prompt;
  pol.max_batch = env.cfg.sampling.max_batch;
  log_info(stage, ": ", describe_model(pol.cfg), "; weights of ", pol.checkpoint.string(), " (step ", pol.step, "); prompts in the ",
           chat_template_name(pol.format->kind()), " template");
  return pol;
}

Share rank_share(std::int64_t n, int rank, int world) {
  const std::int64_t base = n / world, extra = n % world;
  const std::int64_t first = rank * base + std::min<std::int64_t>(rank, extra);
  return {first, first + base + (rank < extra ? 1 : 0)};
}

std::string response_text(const Completion& c, const PromptFormat& format) {
  std::span<const std::int32_t> ids(c.tokens);
  if (!ids.empty() && (ids.back() == format.end_id() || ids.back() == format.tokenizer().special_ids().eos)) ids = ids.first(ids.size() - 1);
  return format.opened() + format.tokenizer().decode(ids);
}

void sample_in_chunks(const Policy& policy, const std::vector<Problem>& problems, Share share, const std::string& stage,
                      const std::function<void(std::int64_t first, std::vector<Completion>& completions)>& consume) {
  // A chunk fills one generation batch under static batching (generate() decodes a batch until its last
  // sequence stops); under continuous batching it holds several batches, so that freed slots are refilled.
  const std::int64_t batches = policy.sampling.batching == Batching::continuous ? 8 : 1;
  const std::int64_t chunk = std::max<std::int64_t>(1, batches * policy.max_batch / policy.samples_per_prompt);
  const std::int64_t mine = share.last - share.first;
  // Under expert parallelism the EP group's ranks generate in step, so each runs as many chunks as the
  // busiest of them (the extra ones without prompts).
  parallel::Communicator* group = policy.model->lockstep_group();
  const std::int64_t chunks = max_over(group, policy.params->context(), (mine + chunk - 1) / chunk);
  const Stopwatch clock;
  std::int64_t tokens = 0;
  for (std::int64_t k = 0; k < chunks; ++k) {
    const std::int64_t first = std::min(share.last, share.first + k * chunk), last = std::min(share.last, first + chunk);
    std::vector<std::vector<std::int32_t>> prompts;
    for (std::int64_t i = first; i < last; ++i) prompts.push_back(policy.format->prompt(problems[static_cast<std::size_t>(i)].prompt));
    std::vector<Completion> comps = generate(*policy.model, prompts, policy.samples_per_prompt, policy.sampling, policy.max_batch, first);
    if (first == last) continue;  // an idle chunk
    for (const Completion& c : comps) tokens += static_cast<std::int64_t>(c.tokens.size());
    consume(first, comps);
    const std::int64_t done = last - share.first;
    if (last == share.last || k % 10 == 9)
      log_info(stage, ": ", done, "/", mine, " prompts of this rank sampled, ", static_cast<std::int64_t>(tokens / std::max(1e-9, clock.seconds())),
               " generated tok/s, ", format_duration(clock.seconds()));
  }
}

}  // namespace r1
