// The grpo stage (R1-Zero and reasoning RL): rollouts from the policy itself on the synthetic reasoning
// world or a GSM8K / MATH JSONL (data.source = files: data.train_path), rule-based rewards, group-normalised advantages, and the clipped GRPO objective with a KL
// penalty to a frozen reference; data parallel over the world (each rank owns whole prompt groups), with
// the model optionally split over tensor-parallel ranks and pipeline stages and its routed experts over
// expert-parallel ones. In the last [grpo] preference_steps steps ("RL for all scenarios") general prompts
// join the reasoning ones, scored by learned reward models: helpfulness on the final summary, harmlessness
// on the whole response. A step is rl/rollout (prompts -> completions -> rewards -> advantages), then
// rl/grpo_step (packing, old and reference log-probs, normaliser, update), then rl/grpo_stats (one
// reduction of the statistics, the metrics record and the progress line).
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "data/chat_template.hpp"
#include "data/problem_files.hpp"
#include "model/model.hpp"
#include "rl/grpo.hpp"
#include "rl/grpo_stats.hpp"
#include "rl/grpo_step.hpp"
#include "rl/reward_scorer.hpp"
#include "rl/rollout.hpp"
#include "run/host_reduce.hpp"
#include "run/signals.hpp"
#include "stages/sampling_stage.hpp"
#include "stages/stage.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/trainer.hpp"

namespace r1 {

namespace {
// The stage's settings: every [grpo], [reward] and [sampling] key it reads, checked here, in one place (the
// optimizer, schedule and checkpoint keys are read where those are built).
struct GrpoSettings {
  ModelConfig model;
  GrpoConfig grpo;
  std::int64_t max_steps = 0;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<PromptFormat> format, reward_format;  // [data] chat_template, pointed to by rollout
  std::unique_ptr<ProblemFile> problems;                // data.source = files: data.train_path, pointed to by rollout
  RolloutConfig rollout;
  PackConfig packing;
};

GrpoSettings grpo_settings(const StageEnv& env) {
  const RunConfig& cfg = env.cfg;
  GrpoSettings s;
  s.model = cfg.model;
  s.grpo = cfg.grpo;
  s.max_steps = cfg.run.max_steps;  // > 0 and prompts_per_step divisible by the replicas: deck/validate.cpp
  RolloutConfig& r = s.rollout;
  r.prompts_per_step = cfg.grpo.prompts_per_step;
  r.mix = problem_mix(cfg.data.synthetic_levels);
  r.preferences = preference_world(cfg.data.preference_pairs, cfg.data.preference_label_noise);
  s.tok = load_tokenizer(cfg.data.tokenizer);
  if (s.tok->vocab_size() > s.model.vocab_size)
    env.deck.fail("model.vocab_size",
                  detail::concat("the tokenizer has ", s.tok->vocab_size(), " tokens; the model must have at least as many"));
  r.max_steps = s.max_steps;
  r.preference_steps = cfg.grpo.preference_steps;
  r.general_prompts = cfg.grpo.general_prompts;
  s.format = std::make_unique<PromptFormat>(prompt_format(cfg, env.deck, *s.tok));
  s.reward_format = std::make_unique<PromptFormat>(reward_model_format(cfg, env.deck, *s.tok));
  if (cfg.data.source == DataSource::files) {
    s.problems = std::make_unique<ProblemFile>(load_problem_file(cfg.data.train_path));
    r.problems = &s.problems->problems;
  }
  r.format = s.format.get();
  r.reward_format = s.reward_format.get();
  r.weights = {.accuracy = cfg.reward.accuracy_weight, .format = cfg.reward.format_weight,
               .language = cfg.reward.language_weight, .overlong = cfg.reward.overlong_penalty};
  r.helpfulness_weight = cfg.reward.helpfulness_weight;
  r.harmlessness_weight = cfg.reward.harmlessness_weight;
  r.sampling = sampling_params(cfg, *s.format);
  r.max_batch = cfg.sampling.max_batch;
  r.score_batch = cfg.train.micro_batch;
  r.max_seq_len = s.model.max_seq_len;
  s.packing = {.micro = cfg.train.micro_batch, .pad = s.tok->special_ids().pad >= 0 ? s.tok->special_ids().pad : s.format->end_id(),
               .min_len = env.comms->tp->size(), .tokens = cfg.grpo.micro_tokens,
               .row = std::min(cfg.grpo.micro_tokens, s.model.max_seq_len)};
  return s;
}

// The frozen reference of the KL term (beta_kl > 0): the starting policy, refreshed every ref_refresh_steps.
struct Reference {
  FrozenModel frozen;
  // Where its weights come from: the starting checkpoint, or "" after a refresh from the policy (the policy
  // of that moment is not a checkpoint of its own). A resumed run reloads the recorded source, so a
  // restart continues with the same reference.
  std::string source;

  const Model* model() const { return frozen.model.get(); }
  void refresh_at(std::int64_t step, std::int64_t every, const ParamStore& policy) {
    if (!frozen.model || every <= 0 || step <= 1 || (step - 1) % every != 0) return;
    frozen.copy_from(policy);
    source.clear();
  }
};

Reference frozen_reference(const GrpoSettings& s, Trainer& trainer) {
  const Resumed& resumed = trainer.resumed();
  Reference ref;
  ref.source = resumed.data_state.value("reference", resumed.loaded.string());
  if (s.grpo.beta_kl <= 0) return ref;
  ref.frozen = trainer.frozen_model();
  if (!ref.source.empty() && ref.source != resumed.loaded.string()) {
    ckpt::load_train_state(ref.source, ckpt::LoadMode::weights, *ref.frozen.params, nullptr);
  } else {
    ref.frozen.copy_from(trainer.params());
    if (resumed.data_state.contains("reference") && ref.source.empty())
      log_warn("grpo: the reference was refreshed from the policy before this restart and was not checkpointed; "
               "it restarts from the resumed policy");
  }
  return ref;
}

// The Trainer of the policy: the deck's model, data parallel over whole AdamW states (no ZeRO-1), split over
// the TP group and the pipeline stages (whose ranks hold the same prompts and sequences; the policy trains
// through the [parallel] schedule) and its routed experts over the EP group, whose ranks generate and run
// their micro-batches in step. The packed rollouts train without sequence parallelism and expert-communication
// overlap, and the router bias stays where it started.
TrainerOptions trainer_options(const StageEnv& env, const GrpoSettings& s) {
  TrainerOptions o = TrainerOptions::from_env(env, "grpo");
  o.groups.sequence_parallel = false;
  o.groups.overlap_expert_comm = false;
  o.steps = s.max_steps;
  o.zero1 = false;
  o.router_bias = false;
  return o;
}

// The reward model the deck's `key` names (null when it names none); one trained with another objective
// than `objective` stops the run naming the key and saying what the reward `needs`.
std::unique_ptr<RewardScorer> reward_model(const StageEnv& env, const ModelConfig& cfg, std::string_view key,
                                           const std::string& path, std::string_view objective, std::string_view needs) {
  if (path.empty()) return nullptr;
  auto m = std::make_unique<RewardScorer>(env.deck, key, path, cfg, env.ctx, env.compute_dtype);
  if (m->objective() != objective)
    env.deck.fail(key, detail::concat(m->checkpoint().string(), " is a ", m->objective(), " reward model; ", needs));
  return m;
}

void log_setup(const GrpoSettings& s, const RewardModels& rms) {
  const RolloutConfig& r = s.rollout;
  log_info("grpo: ", describe_model(s.model), "; ", r.prompts_per_step, " prompts x ", s.grpo.group_size, " samples per step, ",
           s.grpo.inner_epochs, " inner epoch(s), beta ", s.grpo.beta_kl, ", ", chat_template_name(r.format->kind()), " template, problems of ",
           s.problems ? s.problems->dataset + " (" + std::to_string(s.problems->problems.size()) + " in data.train_path)" : "the synthetic world");
  if (r.preference_steps > 0)
    log_info("grpo: steps ", r.first_preference_step(), "..", s.max_steps, " add ", r.general_prompts,
             " general prompts per step scored by",
             rms.helpfulness ? " helpfulness (" + rms.helpfulness->checkpoint().string() + ", final summary)" : "",
             rms.harmlessness ? " harmlessness (" + rms.harmlessness->checkpoint().string() + ", whole response)" : "");
}
}  // namespace

int run_grpo(StageEnv& env) {
  const GrpoSettings s = grpo_settings(env);
  const std::unique_ptr<RewardScorer> helpfulness =
      reward_model(env, s.model, "reward.helpfulness_model", env.cfg.reward.helpfulness_model, "pairwise", "helpfulness needs a pairwise (Bradley-Terry) one");
  const std::unique_ptr<RewardScorer> harmlessness =
      reward_model(env, s.model, "reward.harmlessness_model", env.cfg.reward.harmlessness_model, "pointwise", "harmlessness needs a pointwise (safe/unsafe) one");
  const RewardModels rms{.helpfulness = helpfulness.get(), .harmlessness = harmlessness.get()};
  nlohmann::json reward_models = nlohmann::json::array();  // the lineage's reward-model edges
  for (const RewardScorer* m : {rms.helpfulness, rms.harmlessness})
    if (m) reward_models.push_back(std::filesystem::absolute(m->checkpoint()).lexically_normal().string());
  Trainer trainer(env, trainer_options(env, s));
  Reference reference = frozen_reference(s, trainer);
  log_setup(s, rms);

  parallel::Communicator& dp = trainer.dp();
  for (std::int64_t step = trainer.first_step(); step <= s.max_steps; ++step) {
    trainer.begin_step(step);
    reference.refresh_at(step, s.grpo.ref_refresh_steps, trainer.params());
    begin_phase(env.ctx, true);
    const Rollouts rollouts = roll_out(trainer.model(), *s.tok, rms, s.rollout, s.grpo, step, dp.rank(), dp.size());
    const double rollout_peak = phase_peak(env.ctx);
    const GrpoUpdate update = grpo_step(trainer, reference.model(), rollouts.kept, s.packing, s.grpo);
    std::vector<double> peaks{rollout_peak, update.memory.scoring, update.memory.update};
    max_over(dp, env.ctx, peaks);
    const GrpoStepStats mine{.rollout = rollouts.stats, .mismatch = update.mismatch, .loss = update.stats};
    GrpoStepStats all = mine;
    sum_over(dp, env.ctx, all);
    StageReport report{.record = grpo_record(mine, all, {.step = step, .lr = update.result.lr, .grad_norm = update.result.grad_norm,
                                                         .step_s = trainer.step_seconds(), .replicas = dp.size(),
                                                         .group_size = s.grpo.group_size,
                                                         .preference_run = s.rollout.preference_steps > 0,
                                                         .preference_step = s.rollout.preference_step(step),
                                                         .helpfulness = rms.helpfulness != nullptr,
                                                         .harmlessness = rms.harmlessness != nullptr,
                                                         .memory = {.rollout = peaks[0], .scoring = peaks[1], .update = peaks[2]}}),
                       .data_state = {{"prompts_consumed", step * s.rollout.prompts_per_step}, {"reference", reference.source},
                                      {"reward_models", reward_models}}};
    report.line = grpo_progress_line(report.record, all, {.step = step, .total_steps = s.max_steps, .elapsed_s = trainer.elapsed_s(),
                                                          .steps_done = step - trainer.first_step() + 1});
    if (trainer.end_step(update.result, report)) return kExitRequeue;
  }
  trainer.finish();
  return 0;
}

}  // namespace r1
