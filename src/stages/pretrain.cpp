// The pretrain stage: next-token training from scratch on a corpus, data parallel over the world.
#include <algorithm>
#include <cmath>

#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "data/corpus.hpp"
#include "kernels/profile.hpp"
#include "model/model.hpp"
#include "run/metrics.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "stages/step_profiler.hpp"
#include "train/optimizer.hpp"

namespace r1 {

int run_pretrain(StageEnv& env) {
  const Deck& deck = env.deck;
  const kernels::Context& ctx = env.ctx;
  parallel::Communicator& dp = *env.comms->dp;
  const ModelConfig& cfg = env.cfg.model;
  const BatchPlan plan = BatchPlan::from_config(env.cfg, dp.size());
  const std::int64_t seq = plan.seq, micro = plan.micro, replicas = plan.replicas, global = plan.global, n_micro = plan.n_micro;
  const std::int64_t max_steps = env.cfg.run.max_steps;

  const Corpus corpus = Corpus::from_config(env.cfg, deck);
  ParamStore params(ctx, env.compute_dtype);
  Model model(cfg, params, model_groups(env));
  model.full_recompute = plan.full_recompute;
  const auto seed = static_cast<std::uint64_t>(env.cfg.run.seed);
  params.initialize(seed, cfg.init_std);
  AdamW opt(params, AdamWConfig::from_config(env.cfg.optim), optimizer_groups(env));
  const LrSchedule schedule = LrSchedule::from_config(env.cfg.optim, max_steps);
  const Resumed resumed = resume_from_deck(deck, env.cfg, "pretrain", params, opt);
  const std::int64_t first_step = resumed.first_step;
  const std::string& parent = resumed.parent;

  RunInfo info{.stage = "pretrain", .deck_path = deck.file(), .resolved_deck = deck.resolved_text(), .world_size = env.world,
               .layout = layout_json(env)};
  RunDir run(env.cfg.run.output_dir, info, env.rank);
  log_info("pretrain: ", describe_model(cfg), "; ", corpus.tokens(), " corpus tokens; global batch ", global, " x ", seq,
           " tokens (", n_micro, " micro-batch(es) of ", micro, " per replica)");

  const double flops_per_token = train_flops_per_token(cfg, seq);
  const bool shuffle = env.cfg.data.shuffle;
  const std::int64_t log_every = env.cfg.train.log_every, metrics_every = env.cfg.log.metrics_every;
  StageCheckpoints checkpoints(deck, env.cfg, "pretrain", parent, info.layout, params, opt);
  StepProfiler profiler(env.cfg.log);
  const Stopwatch phase;
  for (std::int64_t step = first_step; step <= max_steps; ++step) {
    profiler.before_step(step);
    const Stopwatch step_clock;
    params.zero_grads();
    // This replica's micro-batches: rows of the global batch in data-parallel rank order.
    std::vector<TokenBatch> batches;
    std::vector<double> totals{0.0};  // counted tokens of the global batch
    for (std::int64_t m = 0; m < n_micro; ++m) {
      const std::int64_t first = (step - 1) * global + (dp.rank() * n_micro + m) * micro;
      batches.push_back(corpus.batch(first, micro, seq, seed, shuffle));
      totals[0] += static_cast<double>(batches.back().counted());
    }
    sum_over(dp, ctx, totals);
    const float token_weight = static_cast<float>(1.0 / std::max(1.0, totals[0]));
    const float balance_weight = static_cast<float>(1.0 / static_cast<double>(n_micro * replicas));

    const StepSums sums = train_micro_batches(model, batches, token_weight, balance_weight, opt, dp, ctx,
                                              PipelinePlan::from_env(env));
    const auto& counts = sums.expert_counts;

    const double lr = schedule.at(step);
    const Stopwatch optimizer;
    double grad_norm = 0.0;
    {
      const kernels::ProfileRegion region(ctx, "optimizer");
      grad_norm = opt.step(lr);
      if (cfg.bias_update_gamma > 0 && !counts.empty()) model.update_router_bias(counts, static_cast<float>(cfg.bias_update_gamma));
    }
    ctx.synchronize();
    const double optimizer_s = optimizer.seconds();
    profiler.after_step(step, step == max_steps, step_clock.seconds(), run.path(), env.rank);

    const double loss = sums.loss_sum / std::max(1.0, totals[0]);
    const double seconds = step_clock.seconds();
    const double tokens_per_s = static_cast<double>(global * seq) / seconds;
    const double mfu = env.peak_flops > 0 ? tokens_per_s * flops_per_token / (env.peak_flops * static_cast<double>(env.world)) : -1;
    const ExpertLoad load = expert_load(sums.model_expert_counts);
    if (env.rank == 0 && (step % metrics_every == 0 || step == max_steps)) {
      nlohmann::json rec = {{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                            {"tokens", step * global * seq}, {"tokens_per_s", tokens_per_s}, {"step_s", seconds},
                            {"balance_loss", sums.balance_loss}, {"expert_load", load.layers},
                            {"time", {{"compute_s", sums.compute_s}, {"grad_reduce_s", sums.grad_reduce_s}, {"optimizer_s", optimizer_s}}}};
      if (env.comms->pp->size() > 1) rec["pipeline_bubble"] = sums.bubble;
      if (cfg.mtp_depth > 0) rec["mtp_loss"] = sums.mtp_loss_sum / std::max(1.0, totals[0]);
      if (mfu >= 0) rec["mfu"] = mfu;
      run.metrics().write(rec);
    }
    if (step % log_every == 0 || step == 1 || step == max_steps) {
      std::string extra;
      if (!counts.empty()) extra = detail::concat("  expert load max/mean ", std::round(load.worst * 100) / 100);
      log_info(format_progress({.step = step, .total_steps = max_steps, .metric_name = "loss", .metric = loss,
                                .tokens_per_s = tokens_per_s, .mfu = mfu, .elapsed_s = phase.seconds(),
                                .steps_done = step - first_step + 1}),
               "  lr ", lr, "  |g| ", grad_norm, extra);
    }
    if (checkpoints.after_step(step, max_steps, step * global * seq, {{"sequences_consumed", step * global}, {"seq_len", seq}}))
      return kExitRequeue;
  }
  checkpoints.finish();
  log_info("pretrain: done at step ", max_steps, " in ", format_duration(phase.seconds()));
  return 0;
}

}  // namespace r1
