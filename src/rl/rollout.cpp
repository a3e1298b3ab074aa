#include "rl/rollout.hpp"

#include <algorithm>
#include <string>

#include "core/timer.hpp"
#include "data/chat_template.hpp"
#include "data/reasoning_world.hpp"
#include "data/world_text.hpp"
#include "generate/engine.hpp"
#include "model/model.hpp"
#include "rl/reward_scorer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {
namespace {

// This rank's prompts of a step: its reasoning problems, then its general prompts.
struct StepPrompts {
  std::vector<Problem> problems;
  std::vector<PreferencePair> general;
  std::vector<std::vector<std::int32_t>> tokens;  // every prompt in the template, problems first
  std::int64_t first_index = 0;                   // the global index of this rank's first prompt
};

// Reasoning problems of the train split are numbered on across steps (a preference step draws P - general
// of them), general prompts (the preference data's) likewise; each rank takes a contiguous share of both.
StepPrompts step_prompts(const RolloutConfig& c, std::int64_t step, int replica, int replicas) {
  const std::int64_t my_prompts = c.prompts_per_step / replicas;
  const std::int64_t general_before = c.general_prompts * std::max<std::int64_t>(0, step - c.first_preference_step());
  const std::int64_t my_general = c.preference_step(step) ? c.general_prompts / replicas : 0;
  const std::int64_t my_reasoning = my_prompts - my_general;
  const std::int64_t first = (step - 1) * c.prompts_per_step - general_before + replica * my_reasoning;
  StepPrompts p;
  if (c.problems) {
    const auto n = static_cast<std::int64_t>(c.problems->size());
    for (std::int64_t k = first; k < first + my_reasoning; ++k) p.problems.push_back((*c.problems)[static_cast<std::size_t>(k % n)]);
  } else {
    const std::vector<Problem> problems = generate_problems(c.mix, first + my_reasoning, c.sampling.seed, Split::train);
    p.problems.assign(problems.begin() + first, problems.end());
  }
  if (my_general > 0) {
    const std::int64_t g0 = general_before + replica * my_general;
    const std::vector<PreferencePair> pairs = generate_preference_pairs(g0 + my_general, c.sampling.seed, c.preferences);
    p.general.assign(pairs.begin() + g0, pairs.end());
  }
  for (const Problem& q : p.problems) p.tokens.push_back(c.format->prompt(q.prompt));
  for (const PreferencePair& g : p.general) p.tokens.push_back(c.format->prompt(g.prompt));
  // Sampling is keyed by the step's prompt slots.
  p.first_index = (step - 1) * c.prompts_per_step + replica * my_prompts;
  return p;
}

// The general completions, waiting for the reward models: each model scores its inputs in one batch.
struct LearnedInputs {
  std::vector<std::size_t> at;  // the completion's index
  std::vector<std::vector<std::int32_t>> helpfulness, harmlessness;
};

// A reward model's input, the exchange in reward_format (as the reward_model stage trains on it) cut at
// the model's length.
std::vector<std::int32_t> reward_model_input(const PromptFormat& format, const std::string& prompt, const std::string& response,
                                             std::int64_t max_seq_len) {
  std::vector<std::int32_t> t = format.exchange(prompt, response);
  if (static_cast<std::int64_t>(t.size()) > max_seq_len) t.resize(static_cast<std::size_t>(max_seq_len));
  return t;
}

// Every completion's rule-based reward (0 for a general completion, whose reward-model inputs go to
// `learned`: helpfulness reads the prompt and the final summary, harmlessness the prompt and the whole
// response), with the statistics of the completions.
std::vector<double> rule_based_rewards(const std::vector<Completion>& comps, const StepPrompts& prompts, const RolloutConfig& c,
                                       const RewardModels& models, LearnedInputs& learned, RolloutStats& s) {
  std::vector<double> rewards;
  const auto n_reasoning = static_cast<std::int64_t>(prompts.problems.size());
  for (const Completion& comp : comps) {
    for (float h : comp.entropies) s.entropy += h;
    s.reflections += static_cast<double>(count_reflection_words(comp.text));
    const bool cut = comp.finished_by == FinishReason::length;
    double total = 0;
    // The completion scored as written after the prompt: with what the template opened it (<think>).
    const std::string text = c.format->opened() + comp.text;
    if (comp.prompt_index < n_reasoning) {
      const Rewards r = score_completion(text, prompts.problems[static_cast<std::size_t>(comp.prompt_index)], c.weights,
                                         static_cast<std::int64_t>(comp.tokens.size()), cut);
      total = r.total;
      s.accuracy += r.accuracy;
      s.format += r.format;
      s.language += r.language;
      s.reasoning_n += 1;
      s.reasoning_sum += total;
    } else {
      const PreferencePair& g = prompts.general[static_cast<std::size_t>(comp.prompt_index - n_reasoning)];
      learned.at.push_back(rewards.size());
      if (models.helpfulness)
        learned.helpfulness.push_back(reward_model_input(*c.reward_format, g.prompt, final_summary(text), c.max_seq_len));
      if (models.harmlessness) learned.harmlessness.push_back(reward_model_input(*c.reward_format, g.prompt, text, c.max_seq_len));
    }
    rewards.push_back(total);
    s.length_sum += static_cast<double>(comp.tokens.size());
    s.length_max = std::max(s.length_max, static_cast<double>(comp.tokens.size()));
    s.truncated += cut;
  }
  return rewards;
}

// The general completions' rewards: the weighted scores of the reward models.
void add_learned_rewards(const LearnedInputs& learned, const RewardModels& models, const RolloutConfig& c, std::vector<double>& rewards,
                         RolloutStats& s) {
  if (learned.at.empty()) return;
  const Tokenizer& tok = c.reward_format->tokenizer();
  const std::int32_t pad = tok.special_ids().pad >= 0 ? tok.special_ids().pad : c.reward_format->end_id();
  const auto scores = [&](const RewardScorer* m, const std::vector<std::vector<std::int32_t>>& seqs) {
    return m ? m->score(seqs, c.score_batch, pad) : std::vector<double>{};
  };
  const std::vector<double> help = scores(models.helpfulness, learned.helpfulness);
  const std::vector<double> harm = scores(models.harmlessness, learned.harmlessness);
  for (std::size_t k = 0; k < learned.at.size(); ++k) {
    double& r = rewards[learned.at[k]];
    if (models.helpfulness) {
      r += c.helpfulness_weight * help[k];
      s.helpfulness_sum += help[k];
    }
    if (models.harmlessness) {
      r += c.harmlessness_weight * harm[k];
      s.harmlessness_sum += harm[k];
    }
    s.general_n += 1;
    s.general_sum += r;
  }
}

// The completions trained on, with their advantages: not empty, and under dynamic sampling not in a group
// whose rewards are all equal.
std::vector<Rollout> kept_rollouts(const std::vector<Completion>& comps, const StepPrompts& prompts,
                                   const std::vector<std::int64_t>& groups, const GroupAdvantages& adv, bool dynamic_sampling) {
  std::vector<Rollout> kept;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    const bool uniform = std::find(adv.uniform_groups.begin(), adv.uniform_groups.end(), groups[i]) != adv.uniform_groups.end();
    if ((dynamic_sampling && uniform) || comps[i].tokens.empty()) continue;
    Rollout r;
    r.tokens = prompts.tokens[static_cast<std::size_t>(comps[i].prompt_index)];
    r.prompt_len = static_cast<std::int64_t>(r.tokens.size());
    r.tokens.insert(r.tokens.end(), comps[i].tokens.begin(), comps[i].tokens.end());
    r.advantage = adv.advantages[i];
    r.truncated = comps[i].finished_by == FinishReason::length;
    r.policy_logprobs = comps[i].policy_logprobs;
    r.experts = comps[i].experts;
    kept.push_back(std::move(r));
  }
  return kept;
}

}  // namespace

Rollouts roll_out(const Model& policy, const Tokenizer& tok, const RewardModels& reward_models, const RolloutConfig& config,
                  const GrpoConfig& grpo, std::int64_t step, int replica, int replicas) {
  Rollouts out;
  RolloutStats& s = out.stats;
  const StepPrompts prompts = step_prompts(config, step, replica, replicas);
  const Stopwatch clock;
  SamplingParams sampling = config.sampling;
  sampling.record_experts = policy.trunk_moe_layers() > 0;  // for routing replay and the rerouting statistics
  std::vector<Completion> comps =
      generate(policy, prompts.tokens, grpo.group_size, sampling, config.max_batch, prompts.first_index);
  s.generate_s = clock.seconds();
  fill_text(comps, tok);
  s.completions = static_cast<double>(comps.size());

  // Rewards and advantages (groups are prompts; all of a group's samples are on this rank).
  LearnedInputs learned;
  std::vector<double> rewards = rule_based_rewards(comps, prompts, config, reward_models, learned, s);
  add_learned_rewards(learned, reward_models, config, rewards, s);
  for (double r : rewards) {
    s.reward_sum += r;
    s.reward_squares += r * r;
  }
  std::vector<std::int64_t> groups;
  for (const Completion& comp : comps) groups.push_back(comp.prompt_index);
  const GroupAdvantages adv = group_advantages(rewards, groups, grpo);
  s.uniform_groups = static_cast<double>(adv.uniform_groups.size());
  out.kept = kept_rollouts(comps, prompts, groups, adv, grpo.dynamic_sampling);
  return out;
}

}  // namespace r1
