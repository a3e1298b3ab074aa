// The grpo stage (R1-Zero and reasoning RL): rollouts from the policy itself on the synthetic reasoning
// world, rule-based rewards, group-normalised advantages, and the clipped GRPO objective with a KL
// penalty to a frozen reference; data parallel over the world (each rank owns whole prompt groups), with
// the model optionally split over tensor-parallel ranks and pipeline stages and its routed experts over
// expert-parallel ones. In the last [grpo] preference_steps steps ("RL for all scenarios") general prompts
// join the reasoning ones, scored by learned reward models: helpfulness on the final summary, harmlessness
// on the whole response.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "data/reasoning_world.hpp"
#include "data/world_text.hpp"
#include "generate/engine.hpp"
#include "kernels/elementwise.hpp"
#include "model/model.hpp"
#include "rl/grpo.hpp"
#include "rl/reward_scorer.hpp"
#include "rl/rewards.hpp"
#include "run/metrics.hpp"
#include "run/signals.hpp"
#include "stages/sampling_stage.hpp"
#include "stages/stage.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/optimizer.hpp"

namespace r1 {

namespace {
// One training sequence: prompt + completion; the loss sits on the completion's tokens.
struct Rollout {
  std::vector<std::int32_t> tokens;
  std::int64_t prompt_len = 0;
  std::int32_t completion = 0;  // index among this rank's completions
};

// Packs rollouts [first, last) into a right-padded micro-batch: targets (next tokens) only where the
// next token belongs to the completion; `owner[t]` is the completion a loss token belongs to. An empty
// range packs rows of padding without a loss (an idle micro-batch under expert or pipeline parallelism).
// The batch holds at least `min_rows` rows of at least `min_len` tokens (the tensor-parallel ranks split
// a micro-batch's tokens in the MoE; the pipeline passes activations of one shape).
TokenBatch pack(const std::vector<Rollout>& rs, std::size_t first, std::size_t last, std::int32_t pad,
                std::vector<std::int32_t>& owner, std::int64_t min_len, std::int64_t min_rows) {
  std::int64_t len = min_len;
  for (std::size_t i = first; i < last; ++i) len = std::max<std::int64_t>(len, static_cast<std::int64_t>(rs[i].tokens.size()));
  TokenBatch b;
  b.batch = std::max<std::int64_t>(min_rows, static_cast<std::int64_t>(last - first));
  b.seq = len;
  b.ids.assign(static_cast<std::size_t>(b.batch * len), pad);
  b.targets.assign(b.ids.size(), -1);
  owner.assign(b.ids.size(), -1);
  for (std::size_t i = first; i < last; ++i) {
    const Rollout& r = rs[i];
    const std::size_t row = (i - first) * static_cast<std::size_t>(len);
    std::copy(r.tokens.begin(), r.tokens.end(), b.ids.begin() + static_cast<std::ptrdiff_t>(row));
    for (std::size_t t = static_cast<std::size_t>(r.prompt_len) - 1; t + 1 < r.tokens.size(); ++t) {
      b.targets[row + t] = r.tokens[t + 1];
      owner[row + t] = r.completion;
    }
  }
  return b;
}

// log pi(target) per token (0 where there is no target) from per-token cross-entropies.
std::vector<float> logprobs_of(const Tensor& token_losses) {
  Tensor h = Tensor::host(token_losses.shape(), DType::f32);
  copy(h, token_losses);
  std::vector<float> lp(h.data<float>(), h.data<float>() + h.numel());
  for (float& v : lp) v = -v;
  return lp;
}

// The same under `model` for a packed batch, on every pipeline stage.
std::vector<float> token_logprobs(const Model& model, const TokenBatch& tb) {
  return logprobs_of(model.score_tokens(model.upload(tb)));
}

// "wait", "verify", "check" (and their Spanish counterparts) as whole words, case-insensitive: the
// self-reflection the R1 paper watched grow during RL.
std::int64_t count_reflection_words(const std::string& text) {
  static const char* kWords[] = {"wait", "verify", "check", "espera", "verificar", "comprobar"};
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::int64_t n = 0;
  for (const char* w : kWords) {
    const std::string word(w);
    for (std::size_t at = lower.find(word); at != std::string::npos; at = lower.find(word, at + 1)) {
      const bool start = at == 0 || !std::isalpha(static_cast<unsigned char>(lower[at - 1]));
      const bool end = at + word.size() >= lower.size() || !std::isalpha(static_cast<unsigned char>(lower[at + word.size()]));
      n += start && end;
    }
  }
  return n;
}

void copy_weights(const ParamStore& from, ParamStore& to) {
  for (const auto& p : from.all()) copy(to.get(p->name).master, p->master);
  to.refresh_compute();
}
}  // namespace

int run_grpo(StageEnv& env) {
  const Deck& deck = env.deck;
  const kernels::Context& ctx = env.ctx;
  parallel::Communicator& dp = *env.comms->dp;
  const ModelConfig& cfg = env.cfg.model;
  const GrpoConfig& gc = env.cfg.grpo;
  const std::int64_t max_steps = env.cfg.run.max_steps;
  const std::int64_t prompts_per_step = env.cfg.grpo.prompts_per_step;
  const std::int64_t my_prompts = prompts_per_step / dp.size();
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(env.cfg.data.tokenizer);
  if (tok->vocab_size() > cfg.vocab_size)
    deck.fail("model.vocab_size", detail::concat("the tokenizer has ", tok->vocab_size(), " tokens; the model must have at least as many"));
  const bool r1_zero = env.cfg.grpo.template_ == PromptTemplate::r1_zero;
  const RewardWeights weights{.accuracy = env.cfg.reward.accuracy_weight,
                              .format = env.cfg.reward.format_weight,
                              .language = env.cfg.reward.language_weight,
                              .overlong = env.cfg.reward.overlong_penalty};
  SamplingParams sp = sampling_params(env.cfg, *tok);
  const std::uint64_t seed = sp.seed;
  const std::int64_t micro = env.cfg.train.micro_batch;
  // RL for all scenarios: from step pref_first on, general_per_step of the step's prompts are general ones.
  const std::int64_t preference_steps = env.cfg.grpo.preference_steps, general_per_step = env.cfg.grpo.general_prompts;
  const std::int64_t pref_first = max_steps - preference_steps + 1;
  const double help_weight = env.cfg.reward.helpfulness_weight, harm_weight = env.cfg.reward.harmlessness_weight;

  // Tensor, pipeline and expert parallelism: the policy and the reference are split over the TP group and
  // the pipeline stages (whose ranks hold the same prompts and sequences; the policy trains through the
  // [parallel] schedule) and their routed experts over the EP group, whose ranks generate and run their
  // micro-batches in step (each data-parallel rank still owns whole prompt groups).
  const ModelGroups groups{.tp = env.comms->tp.get(), .ep = env.comms->ep.get(), .pp = env.comms->pp.get(),
                           .virtual_stages = static_cast<int>(env.cfg.parallel.virtual_stages)};
  const PipelinePlan pipe = PipelinePlan::from_env(env);
  const bool pipelined = pipe.pp->size() > 1;
  ParamStore params(ctx, env.compute_dtype);
  Model model(cfg, params, groups);
  model.full_recompute = env.cfg.train.recompute == Recompute::full;
  params.initialize(seed, cfg.init_std);
  AdamW opt(params, AdamWConfig::from_config(env.cfg.optim), optimizer_groups(env, /*zero1=*/false));
  const LrSchedule schedule = LrSchedule::from_config(env.cfg.optim, max_steps);
  const Resumed resumed = resume_from_deck(deck, env.cfg, "grpo", params, opt);
  // The frozen reference: the starting policy, refreshed every ref_refresh_steps.
  std::unique_ptr<ParamStore> ref_params;
  std::unique_ptr<Model> ref_model;
  // Where the reference's weights come from: the starting checkpoint, or (after a refresh) the policy.
  // A resumed run reloads the recorded source, so a restart continues with the same reference.
  std::string ref_source = resumed.data_state.value("reference", resumed.loaded.string());
  if (gc.beta_kl > 0) {
    ref_params = std::make_unique<ParamStore>(ctx, env.compute_dtype);
    ref_model = std::make_unique<Model>(cfg, *ref_params, groups);
    if (!ref_source.empty() && ref_source != resumed.loaded.string()) {
      ckpt::load_train_state(ref_source, ckpt::LoadMode::weights, *ref_params, nullptr);
    } else {
      copy_weights(params, *ref_params);
      if (resumed.data_state.contains("reference") && ref_source.empty())
        log_warn("grpo: the reference was refreshed from the policy before this restart and was not checkpointed; "
                 "it restarts from the resumed policy");
    }
  }
  std::unique_ptr<RewardScorer> helpfulness, harmlessness;
  if (!env.cfg.reward.helpfulness_model.empty()) {
    helpfulness = std::make_unique<RewardScorer>(deck, "reward.helpfulness_model", env.cfg.reward.helpfulness_model, cfg, ctx,
                                                 env.compute_dtype);
    if (helpfulness->objective() != "pairwise")
      deck.fail("reward.helpfulness_model", detail::concat(helpfulness->checkpoint().string(), " is a ", helpfulness->objective(),
                                                           " reward model; helpfulness needs a pairwise (Bradley-Terry) one"));
  }
  if (!env.cfg.reward.harmlessness_model.empty()) {
    harmlessness = std::make_unique<RewardScorer>(deck, "reward.harmlessness_model", env.cfg.reward.harmlessness_model, cfg, ctx,
                                                  env.compute_dtype);
    if (harmlessness->objective() != "pointwise")
      deck.fail("reward.harmlessness_model", detail::concat(harmlessness->checkpoint().string(), " is a ", harmlessness->objective(),
                                                            " reward model; harmlessness needs a pointwise (safe/unsafe) one"));
  }
  nlohmann::json reward_models = nlohmann::json::array();  // the lineage's reward-model edges
  for (const RewardScorer* m : {helpfulness.get(), harmlessness.get()})
    if (m) reward_models.push_back(std::filesystem::absolute(m->checkpoint()).lexically_normal().string());
  RunInfo info{.stage = "grpo", .deck_path = deck.file(), .resolved_deck = deck.resolved_text(), .world_size = env.world,
               .layout = layout_json(env)};
  RunDir run(env.cfg.run.output_dir, info, env.rank);
  StageCheckpoints checkpoints(deck, env.cfg, "grpo", resumed.parent, info.layout, params, opt);
  log_info("grpo: ", describe_model(cfg), "; ", prompts_per_step, " prompts x ", gc.group_size, " samples per step, ",
           gc.inner_epochs, " inner epoch(s), beta ", gc.beta_kl, ", ", r1_zero ? "R1-Zero" : "chat", " template");
  if (preference_steps > 0)
    log_info("grpo: steps ", pref_first, "..", max_steps, " add ", general_per_step, " general prompts per step scored by",
             helpfulness ? " helpfulness (" + helpfulness->checkpoint().string() + ", final summary)" : "",
             harmlessness ? " harmlessness (" + harmlessness->checkpoint().string() + ", whole response)" : "");

  const Stopwatch phase;
  for (std::int64_t step = resumed.first_step; step <= max_steps; ++step) {
    const Stopwatch step_clock;
    if (ref_model && gc.ref_refresh_steps > 0 && step > 1 && (step - 1) % gc.ref_refresh_steps == 0) {
      copy_weights(params, *ref_params);
      ref_source.clear();  // the policy of this moment: not a checkpoint of its own
    }
    // This rank's prompts. Reasoning problems of the train split are numbered on across steps (a
    // preference step draws P - general of them), general prompts (the preference data's) likewise;
    // each rank takes a contiguous share of both. Sampling is keyed by the step's prompt slots.
    const bool preference = preference_steps > 0 && step >= pref_first;
    const std::int64_t general_before = general_per_step * std::max<std::int64_t>(0, step - pref_first);
    const std::int64_t my_general = preference ? general_per_step / dp.size() : 0, my_reasoning = my_prompts - my_general;
    const std::int64_t first = (step - 1) * prompts_per_step - general_before + dp.rank() * my_reasoning;
    const std::vector<Problem> all = generate_problems(ProblemMix{}, first + my_reasoning, seed, Split::train);
    const std::vector<Problem> problems(all.begin() + first, all.end());
    std::vector<PreferencePair> general;
    if (my_general > 0) {
      const std::int64_t g0 = general_before + dp.rank() * my_general;
      const std::vector<PreferencePair> pairs = generate_preference_pairs(g0 + my_general, seed);
      general.assign(pairs.begin() + g0, pairs.end());
    }
    const auto n_reasoning = static_cast<std::int64_t>(problems.size());
    const auto templ = [&](const std::string& q) { return tok->encode(r1_zero ? r1_zero_prompt(q) : chat_prompt(q)); };
    std::vector<std::vector<std::int32_t>> prompts;
    for (const Problem& p : problems) prompts.push_back(templ(p.prompt));
    for (const PreferencePair& g : general) prompts.push_back(templ(g.prompt));
    const std::int64_t slot = (step - 1) * prompts_per_step + dp.rank() * my_prompts;
    const Stopwatch gen_clock;
    std::vector<Completion> comps = generate(model, prompts, gc.group_size, sp, env.cfg.sampling.max_batch, slot);
    const double gen_s = gen_clock.seconds();
    fill_text(comps, *tok);

    // Rewards and advantages (groups are prompts; all of a group's samples are on this rank).
    std::vector<double> rewards;
    std::vector<std::int64_t> groups;
    std::vector<std::uint8_t> truncated;
    double acc = 0, fmt = 0, lang = 0, len_sum = 0, len_max = 0, trunc = 0, reflections = 0, entropy = 0;
    double reasoning_n = 0, reasoning_sum = 0, general_n = 0, general_sum = 0, help_sum = 0, harm_sum = 0;
    // General completions go to the reward models in one batch each: helpfulness reads the prompt and the
    // final summary, harmlessness the prompt and the whole response (as the reward_model stage trains them).
    std::vector<std::size_t> general_at;
    std::vector<std::vector<std::int32_t>> help_seqs, harm_seqs;
    const std::int32_t eos = tok->special_id("<|eos|>"), pad = tok->special_id("<|pad|>");
    const auto rm_input = [&](const std::string& prompt, const std::string& response) {
      std::vector<std::int32_t> t = tok->encode(chat_prompt(prompt) + response);
      t.push_back(eos);
      if (static_cast<std::int64_t>(t.size()) > cfg.max_seq_len) t.resize(static_cast<std::size_t>(cfg.max_seq_len));
      return t;
    };
    for (const Completion& c : comps) {
      for (float h : c.entropies) entropy += h;
      reflections += static_cast<double>(count_reflection_words(c.text));
      const bool cut = c.finished_by == FinishReason::length;
      double total = 0;
      if (c.prompt_index < n_reasoning) {
        const Rewards r = score_completion(c.text, problems[static_cast<std::size_t>(c.prompt_index)], weights,
                                           static_cast<std::int64_t>(c.tokens.size()), cut);
        total = r.total;
        acc += r.accuracy;
        fmt += r.format;
        lang += r.language;
        reasoning_n += 1;
        reasoning_sum += total;
      } else {
        const PreferencePair& g = general[static_cast<std::size_t>(c.prompt_index - n_reasoning)];
        general_at.push_back(rewards.size());
        if (helpfulness) help_seqs.push_back(rm_input(g.prompt, final_summary(c.text)));
        if (harmlessness) harm_seqs.push_back(rm_input(g.prompt, c.text));
      }
      rewards.push_back(total);
      groups.push_back(c.prompt_index);
      truncated.push_back(cut ? 1 : 0);
      len_sum += static_cast<double>(c.tokens.size());
      len_max = std::max(len_max, static_cast<double>(c.tokens.size()));
      trunc += cut;
    }
    if (!general_at.empty()) {
      const std::vector<double> help = helpfulness ? helpfulness->score(help_seqs, micro, pad) : std::vector<double>{};
      const std::vector<double> harm = harmlessness ? harmlessness->score(harm_seqs, micro, pad) : std::vector<double>{};
      for (std::size_t k = 0; k < general_at.size(); ++k) {
        double& r = rewards[general_at[k]];
        if (helpfulness) {
          r += help_weight * help[k];
          help_sum += help[k];
        }
        if (harmlessness) {
          r += harm_weight * harm[k];
          harm_sum += harm[k];
        }
        general_n += 1;
        general_sum += r;
      }
    }
    const GroupAdvantages adv = group_advantages(rewards, groups, gc);
    std::vector<Rollout> rollouts;
    std::vector<double> kept_adv;
    std::vector<std::uint8_t> kept_trunc;
    for (std::size_t i = 0; i < comps.size(); ++i) {
      const bool uniform = std::find(adv.uniform_groups.begin(), adv.uniform_groups.end(), groups[i]) != adv.uniform_groups.end();
      if ((gc.dynamic_sampling && uniform) || comps[i].tokens.empty()) continue;
      Rollout r;
      r.tokens = prompts[static_cast<std::size_t>(comps[i].prompt_index)];
      r.prompt_len = static_cast<std::int64_t>(r.tokens.size());
      r.tokens.insert(r.tokens.end(), comps[i].tokens.begin(), comps[i].tokens.end());
      r.completion = static_cast<std::int32_t>(kept_adv.size());
      kept_adv.push_back(adv.advantages[i]);
      kept_trunc.push_back(truncated[i]);
      rollouts.push_back(std::move(r));
    }

    // Old-policy and reference log-probs per micro-batch, and the step's normaliser over all ranks.
    struct Micro {
      std::vector<std::int32_t> owner;
      std::vector<float> old_lp, ref_lp;
    };
    std::vector<TokenBatch> batches;
    std::vector<Micro> micros;
    GrpoNormaliser norm;
    // Under expert parallelism every rank runs as many micro-batches as the busiest rank of its EP group
    // (dynamic sampling leaves ranks different numbers of rollouts); the extra ones hold padding and no
    // loss. Under pipeline parallelism the stages pass activations of one shape, so every micro-batch has
    // `micro` rows as long as the longest rollout, and there is at least one (a multiple of the stages
    // under the interleaved schedule).
    const auto real_micros = static_cast<std::int64_t>((rollouts.size() + static_cast<std::size_t>(micro) - 1) / static_cast<std::size_t>(micro));
    std::int64_t n_micros = max_over(model.lockstep_group(), ctx, real_micros);
    std::int64_t min_len = env.comms->tp->size(), min_rows = 1;
    if (pipelined) {
      for (const Rollout& r : rollouts) min_len = std::max(min_len, static_cast<std::int64_t>(r.tokens.size()));
      min_rows = micro;
      const std::int64_t multiple = pipe.virtual_stages > 1 ? pipe.pp->size() : 1;
      n_micros = std::max<std::int64_t>(1, (n_micros + multiple - 1) / multiple * multiple);
    }
    for (std::int64_t k = 0; k < n_micros; ++k) {
      Micro m;
      const std::size_t s = static_cast<std::size_t>(k * micro);
      batches.push_back(pack(rollouts, std::min(s, rollouts.size()), std::min(rollouts.size(), s + static_cast<std::size_t>(micro)),
                             tok->special_id("<|pad|>"), m.owner, min_len, min_rows));
      m.old_lp = token_logprobs(model, batches.back());
      if (ref_model) m.ref_lp = token_logprobs(*ref_model, batches.back());
      norm += grpo_normaliser(GrpoTokens{m.old_lp, m.old_lp, m.ref_lp, m.owner, kept_adv, kept_trunc}, gc);
      micros.push_back(std::move(m));
    }
    std::vector<double> totals{norm.tokens, norm.completions};
    sum_over(dp, ctx, totals);
    norm.tokens = totals[0];
    norm.completions = totals[1];

    GrpoStats stats;
    double grad_norm = 0;
    const double lr = schedule.at(step);
    for (std::int64_t epoch = 0; epoch < gc.inner_epochs; ++epoch) {
      params.zero_grads();
      // A token's weight depends on its log-prob under the current policy: each micro-batch's weights come
      // from its own forward (on the last pipeline stage).
      const TokenWeights weigh = [&](std::size_t k, const Tensor& token_losses) {
        const Micro& m = micros[k];
        const std::vector<float> lp = logprobs_of(token_losses);
        GrpoStats s;
        const std::vector<float> w =
            grpo_token_weights(GrpoTokens{lp, m.old_lp, m.ref_lp, m.owner, kept_adv, kept_trunc}, norm, gc, &s);
        if (epoch == gc.inner_epochs - 1) stats += s;
        Tensor wh = Tensor::host({static_cast<std::int64_t>(w.size())}, DType::f32);
        std::copy(w.begin(), w.end(), wh.data<float>());
        return ctx.to_here(wh);
      };
      train_micro_batches(model, batches, 0.0f, 0.0f, opt, dp, ctx, pipe, weigh);
      grad_norm = opt.step(lr);
    }
    if (pipelined) {  // the loss and its statistics were computed on the last stage
      std::vector<double> v{stats.loss, static_cast<double>(stats.tokens), stats.ratio_sum, stats.kl_sum,
                            static_cast<double>(stats.clipped_low), static_cast<double>(stats.clipped_high)};
      sum_over(*pipe.pp, ctx, v);
      stats = {.loss = v[0], .tokens = std::llround(v[1]), .ratio_sum = v[2], .kl_sum = v[3],
               .clipped_low = std::llround(v[4]), .clipped_high = std::llround(v[5])};
    }

    const double n = static_cast<double>(comps.size());
    std::vector<double> sums{std::accumulate(rewards.begin(), rewards.end(), 0.0), acc, fmt, lang, len_sum, trunc, n,
                             stats.loss, static_cast<double>(stats.tokens), stats.ratio_sum, stats.kl_sum,
                             static_cast<double>(stats.clipped_low + stats.clipped_high),
                             static_cast<double>(adv.uniform_groups.size()), len_max};
    double sq = 0;
    for (double r : rewards) sq += r * r;
    sums.push_back(sq);
    sums.push_back(reflections);
    sums.push_back(gen_s);
    sums.push_back(entropy);
    for (double v : {reasoning_n, reasoning_sum, general_n, general_sum, help_sum, harm_sum}) sums.push_back(v);
    sum_over(dp, ctx, sums);
    const double N = sums[6], T = std::max(1.0, sums[8]), NR = std::max(1.0, sums[18]), NG = sums[20];
    const double reward_mean = sums[0] / N;
    const double reward_std = std::sqrt(std::max(0.0, sums[14] / N - reward_mean * reward_mean));
    if (env.rank == 0) {
      nlohmann::json rec = {{"step", step}, {"reward_mean", reward_mean}, {"reward_std", reward_std}, {"accuracy", sums[1] / NR},
                            {"format_rate", sums[2] / NR}, {"language_consistency", sums[3] / NR},
                            {"response_length_mean", sums[4] / N}, {"response_length_max_rank0", len_max},
                            {"truncated_fraction", sums[5] / N}, {"loss", sums[7]}, {"ratio_mean", sums[9] / T},
                            {"kl_mean", sums[10] / T}, {"clip_fraction", sums[11] / T}, {"uniform_groups", sums[12]},
                            {"lr", lr}, {"grad_norm", grad_norm}, {"reflection_words_per_response", sums[15] / N},
                            {"entropy", sums[17] / std::max(1.0, sums[4])},
                            {"generate_s", gen_s}, {"step_s", step_clock.seconds()},
                            {"rollout_share", gen_s / std::max(1e-9, step_clock.seconds())},
                            {"generated_tokens_per_s", sums[4] / std::max(1e-9, sums[16] / dp.size())}};
      if (preference_steps > 0) {  // RL for all scenarios: the two prompt kinds apart
        rec["preference_step"] = preference;
        rec["reasoning_reward_mean"] = sums[19] / NR;
        if (NG > 0) {
          rec["general_prompts"] = NG / gc.group_size;
          rec["general_reward_mean"] = sums[21] / NG;
          if (helpfulness) rec["helpfulness_mean"] = sums[22] / NG;
          if (harmlessness) rec["harmlessness_mean"] = sums[23] / NG;
        }
      }
      run.metrics().write(rec);
    }
    if (step % env.cfg.train.log_every == 0 || step == resumed.first_step || step == max_steps)
      log_info(format_progress({.step = step, .total_steps = max_steps, .metric_name = "reward", .metric = reward_mean,
                                .tokens_per_s = sums[4] / std::max(1e-9, step_clock.seconds()), .mfu = -1,
                                .elapsed_s = phase.seconds(), .steps_done = step - resumed.first_step + 1}),
               "  accuracy ", sums[1] / NR, "  format ", sums[2] / NR, "  length ", sums[4] / N, "  kl ", sums[10] / T);
    if (checkpoints.after_step(step, max_steps, 0, {{"prompts_consumed", step * prompts_per_step}, {"reference", ref_source}, {"reward_models", reward_models}}))
      return kExitRequeue;
  }
  checkpoints.finish();
  log_info("grpo: done at step ", max_steps, " in ", format_duration(phase.seconds()));
  return 0;
}

}  // namespace r1
