#include "train/trainer.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "checkpoint/train_state.hpp"
#include "kernels/profile.hpp"
#include "run/metrics.hpp"

namespace r1 {

ModelGroups model_groups(const StageEnv& env) {
  return {.tp = env.comms->tp.get(), .ep = env.comms->ep.get(), .pp = env.comms->pp.get(),
          .virtual_stages = pipeline_chunks_per_rank(env.cfg.parallel.schedule, env.cfg.parallel.virtual_stages),
          .placement = chunk_placement(env.cfg.parallel.schedule),
          .two_copies = env.cfg.parallel.schedule == PipelineSchedule::dualpipe,
          .sequence_parallel = env.cfg.parallel.sequence_parallel,
          .overlap_expert_comm = env.cfg.parallel.overlap_expert_comm};
}

TrainerOptions TrainerOptions::from_env(const StageEnv& env, std::string stage) {
  const ModelConfig& cfg = env.cfg.model;
  return {.stage = std::move(stage), .model = cfg, .groups = model_groups(env),
          .batch = BatchPlan::from_config(env.cfg, env.comms->dp->size())};
}

Trainer::InitializedModel::InitializedModel(const StageEnv& env, const TrainerOptions& o)
    : params(env.ctx, env.compute_dtype, env.cfg.train.precision == Precision::fp8,
             env.cfg.train.fp8_scale == Fp8Scale::pow2, env.cfg.train.fp8_cache_swiglu_input),
      model(o.model, params, o.groups) {
  model.full_recompute = o.batch.full_recompute;
  if (o.add_params) o.add_params(params);
  params.initialize(static_cast<std::uint64_t>(env.cfg.run.seed), o.model.init_std);
}

Trainer::Trainer(const StageEnv& env, TrainerOptions options)
    : env_(env),
      options_(std::move(options)),
      net_(env, options_),
      grads_(net_.params, ReplicaGroups::from_env(env, options_.zero1).with_copies_of(net_.model)),
      opt_(net_.params, AdamWConfig::from_config(env.cfg.optim), grads_),
      schedule_(LrSchedule::from_config(env.cfg.optim, options_.steps)),
      resumed_(resume_from_deck(env.deck, env.cfg, options_.stage, net_.params, opt_, options_.new_prefix)),
      run_(open_run_dir(env, options_.stage)),
      checkpoints_(env.deck, env.cfg, *env.comms->world, options_.stage, resumed_.parent, layout_json(env), net_.params, opt_),
      pipe_(PipelinePlan::from_env(env)),
      profiler_(env.cfg.log),
      log_every_(env.cfg.train.log_every),
      metrics_every_(env.cfg.log.metrics_every),
      flops_per_token_(train_flops_per_token(options_.model, options_.batch.seq)),
      guard_(env.cfg.train) {
  const WeightState start = weight_state(net_.params, grads_, *env.comms->world, env.ctx);
  if (!start.finite)
    throw Error(ErrorKind::diverged, detail::concat("the starting weights", resumed_.loaded.empty() ? "" : " (" + resumed_.loaded.string() + ")",
                                                    " are not finite", start.at()));
  guard_.restored(start.norm);
}

float Trainer::balance_weight() const {
  return static_cast<float>(1.0 / static_cast<double>(options_.batch.n_micro * options_.batch.replicas));
}

void FrozenModel::copy_from(const ParamStore& from) {
  for (const auto& p : from.all()) copy(params->get(p->name).master, p->master);
  params->refresh_compute();
}

FrozenModel Trainer::frozen_model() const {
  FrozenModel f;
  f.params = std::make_unique<ParamStore>(env_.ctx, env_.compute_dtype);
  f.model = std::make_unique<Model>(options_.model, *f.params, options_.groups);
  return f;
}

bool Trainer::logs(std::int64_t step) const { return step % log_every_ == 0 || step == first_step() || step == last_step(); }

void Trainer::begin_step(std::int64_t step) {
  profiler_.before_step(step);
  step_ = step;
  step_clock_.reset();
}

StepResult Trainer::step(const std::vector<TokenBatch>& batches, double counted) {
  const double tokens = std::max(1.0, counted);
  return train(batches, 1, {}, static_cast<float>(1.0 / tokens), balance_weight(), tokens);
}

StepResult Trainer::step(const std::vector<TokenBatch>& batches, const TokenWeights& weights, float token_weight,
                         float balance_weight) {
  return step(batches, 1, [&weights](std::int64_t) { return weights; }, token_weight, balance_weight);
}

StepResult Trainer::step(const std::vector<TokenBatch>& batches, std::int64_t updates, const UpdateWeights& weights,
                         float token_weight, float balance_weight) {
  return train(batches, updates, weights, token_weight, balance_weight, 0);
}

StepResult Trainer::train(const std::vector<TokenBatch>& batches, std::int64_t updates, const UpdateWeights& weights,
                          float token_weight, float balance_weight, double counted) {
  StepResult r;
  for (std::int64_t u = 0; u < updates; ++u) {
    net_.params.zero_grads();
    StepSums sums = train_micro_batches(net_.model, batches, token_weight, balance_weight, grads_, *env_.comms->dp, env_.ctx,
                                        pipe_, weights ? weights(u) : TokenWeights{});
    const bool applied_before = u > 0;
    r = update(std::move(sums), /*next_token=*/true, counted, /*last=*/u + 1 == updates);
    if (!r.diverged.empty()) {
      r.restore = r.restore || applied_before;  // an earlier update of the step was applied
      break;
    }
  }
  return r;
}

StepResult Trainer::step(const Passes& passes, std::vector<double>& stage_sums) {
  net_.params.zero_grads();
  StepSums sums;
  ExpertCounts counts = zero_expert_counts(net_.model);
  const Stopwatch compute;
  passes(counts);
  finish_passes(env_.ctx, grads_, compute, sums);
  sum_with_counts(*env_.comms->dp, env_.ctx, stage_sums, counts);
  sums.model_expert_counts = counts;
  sums.expert_counts = std::move(counts);
  return update(std::move(sums), /*next_token=*/false, 0, /*last=*/true);
}

StepResult Trainer::update(StepSums sums, bool next_token, double counted, bool last) {
  StepResult r{.step = step_, .sums = std::move(sums), .next_token = next_token, .lr = schedule_.at(step_)};
  if (counted > 0) {
    r.has_loss = true;
    r.loss = r.sums.loss_sum / counted;
    r.mtp_loss = r.sums.mtp_loss_sum / counted;
    r.diverged = guard_.loss_spike(r.loss);  // the same on every rank: the loss is the global batch's
  }
  const ModelConfig& cfg = net_.model.config();
  const Stopwatch optimizer;
  if (r.diverged.empty()) {
    const kernels::ProfileRegion region(env_.ctx, "optimizer");
    checkpoints_.before_update();
    try {
      r.grad_norm = opt_.step(r.lr);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::diverged) throw;
      r.diverged = e.message();
    }
    if (r.diverged.empty() && options_.router_bias && cfg.bias_update_gamma > 0 && !r.sums.expert_counts.empty())
      net_.model.update_router_bias(r.sums.expert_counts, static_cast<float>(cfg.bias_update_gamma));
    // The weights before a commit, and every weight_check_every steps: finite, and a norm that did not
    // jump. The check reads every weight (a few percent of an optimizer-bound step, hence not every step);
    // a checkpoint save checks what it writes again (checkpoint/integrity.hpp), whatever step it comes at.
    if (r.diverged.empty() && last) {
      const std::int64_t every = env_.cfg.checkpoint.every_steps;
      const bool check = step_ % env_.cfg.train.weight_check_every == 0 || step_ == last_step() || (every > 0 && step_ % every == 0);
      if (check) {
        const kernels::ProfileRegion region(env_.ctx, "weight_check");
        r.weights = weight_state(net_.params, grads_, *env_.comms->world, env_.ctx);
        r.diverged = guard_.weights(r.weights);
        r.restore = !r.diverged.empty();
      }
      if (r.diverged.empty()) guard_.applied(r.has_loss, r.loss, check ? r.weights.norm : -1.0);
    }
  }
  env_.ctx.synchronize();
  r.optimizer_s = optimizer.seconds();
  r.seconds = step_clock_.seconds();
  return r;
}

// The fields every training stage's record has, and those of next-token steps (throughput, MFU, the
// balance and MTP losses, the reduction and optimizer times, the pipeline bubble).
nlohmann::json Trainer::record(const StepResult& r, nlohmann::json rec, double tokens_per_s, double mfu) const {
  rec["step"] = r.step;
  rec["lr"] = r.lr;
  rec["grad_norm"] = r.grad_norm;
  rec["step_s"] = r.seconds;
  if (!r.diverged.empty()) rec["diverged"] = r.diverged;
  rec["time"]["compute_s"] = r.sums.compute_s;
  if (!r.sums.model_expert_counts.empty()) rec["expert_load"] = expert_load(r.sums.model_expert_counts).layers;
  if (!r.next_token) return rec;
  rec["tokens_per_s"] = tokens_per_s;
  rec["balance_loss"] = r.sums.balance_loss;
  rec["time"]["grad_reduce_s"] = r.sums.grad_reduce_s;
  rec["time"]["optimizer_s"] = r.optimizer_s;
  if (pipe_.pp != nullptr && pipe_.pp->size() > 1) rec["pipeline_bubble"] = r.sums.bubble;
  if (options_.model.mtp_depth > 0) rec["mtp_loss"] = r.mtp_loss;
  if (mfu >= 0) rec["mfu"] = mfu;
  return rec;
}

bool Trainer::end_step(const StepResult& r, const StepReport& report) {
  const std::int64_t last = last_step();
  profiler_.after_step(r.step, r.step == last, r.seconds, run_.path(), env_.rank);
  const double tokens_per_s = static_cast<double>(options_.batch.global * options_.batch.seq) / r.seconds;  // positions
  // Model FLOPs utilisation: only where the FLOPs are the model's own (next-token steps) and a peak is known.
  const double mfu = r.next_token && env_.peak_flops > 0
                         ? tokens_per_s * flops_per_token_ / (env_.peak_flops * static_cast<double>(env_.world))
                         : -1;
  if (records(r.step)) run_.metrics().write(record(r, report.record, tokens_per_s, mfu));
  if (logs(r.step))
    log_info(format_progress({.step = r.step, .total_steps = last, .metric_name = report.metric_name, .metric = report.metric,
                              .tokens_per_s = tokens_per_s, .mfu = mfu, .elapsed_s = phase_.seconds(),
                              .steps_done = r.step - first_step() + 1}),
             "  lr ", r.lr, "  |g| ", r.grad_norm, report.extras);
  return checkpoint(r, report.tokens, report.data_state);
}

bool Trainer::end_step(const StepResult& r, const StageReport& report) {
  profiler_.after_step(r.step, r.step == last_step(), r.seconds, run_.path(), env_.rank);
  if (records(r.step)) {
    nlohmann::json rec = report.record;
    if (!r.diverged.empty()) rec["diverged"] = r.diverged;
    run_.metrics().write(rec);
  }
  if (logs(r.step)) log_info(report.line);
  return checkpoint(r, report.tokens, report.data_state);
}

bool Trainer::records(std::int64_t step) const {
  return env_.rank == 0 && (step % metrics_every_ == 0 || step == last_step());
}

// After the step's record and line: a diverged step stops the run or goes back to the last good state
// before anything is saved.
bool Trainer::checkpoint(const StepResult& r, std::int64_t tokens, const nlohmann::json& data_state) {
  if (!r.diverged.empty()) {
    const std::string what = detail::concat("step ", r.step, ": ", r.diverged);
    checkpoints_.finish();  // a good step's asynchronous save in flight commits first
    if (guard_.policy() == DivergencePolicy::stop || !guard_.may_skip())
      throw Error(ErrorKind::diverged,
                  detail::concat(what, "; stopped before committing it (", guard_.policy() == DivergencePolicy::stop
                                 ? "train.divergence_policy = stop" : "too many diverged steps in a row", ")"));
    if (r.restore) restore_last_good(what);
    else log_warn(what, "; skipped: its update was not applied (train.divergence_policy = skip)");
    guard_.skipped();
  }
  return checkpoints_.after_step(r.step, last_step(), tokens, data_state);
}

void Trainer::restore_last_good(const std::string& what) {
  const std::optional<std::filesystem::path> latest = ckpt::latest(checkpoint_dir(env_.cfg));
  if (!latest)
    throw Error(ErrorKind::diverged, detail::concat(what, "; train.divergence_policy = skip found no checkpoint of this run to "
                                                          "return to (they are saved every [checkpoint] every_steps)"));
  const ckpt::Meta m = ckpt::load_train_state(*latest, ckpt::LoadMode::full, net_.params, &opt_, options_.new_prefix);
  const WeightState w = weight_state(net_.params, grads_, *env_.comms->world, env_.ctx);
  if (!w.finite) throw Error(ErrorKind::diverged, detail::concat(what, "; the weights of ", latest->string(), " are not finite"));
  guard_.restored(w.norm);
  log_warn(what, "; skipped: back to ", latest->string(), " (step ", m.step, "), going on with step ", step_ + 1, "'s data");
}

void Trainer::finish() {
  checkpoints_.finish();
  log_info(options_.stage, ": done at step ", last_step(), " in ", format_duration(phase_.seconds()));
}

}  // namespace r1
