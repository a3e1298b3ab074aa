// The sft stage (cold start, the 800k SFT of the base, distillation into a dense student): next-token
// training on packed prompt/response rows with the loss on response tokens only, data parallel over the
// world, epochs or a step count.
#include <algorithm>
#include <cmath>
#include <limits>

#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "data/sft_data.hpp"
#include "model/model.hpp"
#include "run/metrics.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "train/optimizer.hpp"

namespace r1 {

int run_sft(StageEnv& env) {
  const Deck& deck = env.deck;
  const kernels::Context& ctx = env.ctx;
  parallel::Communicator& dp = *env.comms->dp;
  const ModelConfig& cfg = env.cfg.model;
  const BatchPlan plan = BatchPlan::from_config(env.cfg, dp.size());
  const std::int64_t seq = plan.seq, micro = plan.micro, replicas = plan.replicas, global = plan.global, n_micro = plan.n_micro;

  SftData data = SftData::from_config(env.cfg, deck);
  // run.max_steps > 0 fixes the step count (reading on into later epochs if it must); 0 runs [sft] epochs,
  // the last step padded where the rows run out.
  const std::int64_t epochs = env.cfg.sft.epochs, max_steps = env.cfg.run.max_steps;
  const std::int64_t epoch_rows = data.rows(epochs);
  const std::int64_t steps = max_steps > 0 ? max_steps : (epoch_rows + global - 1) / global;
  const std::int64_t end_row = max_steps > 0 ? std::numeric_limits<std::int64_t>::max() : epoch_rows;

  ParamStore params(ctx, env.compute_dtype);
  Model model(cfg, params, model_groups(env));
  model.full_recompute = plan.full_recompute;
  const auto seed = static_cast<std::uint64_t>(env.cfg.run.seed);
  params.initialize(seed, cfg.init_std);
  AdamW opt(params, AdamWConfig::from_config(env.cfg.optim), optimizer_groups(env));
  LrSchedule schedule = LrSchedule::from_config(env.cfg.optim, max_steps);
  if (max_steps == 0) {  // the schedule's length is the epochs' steps (LrSchedule reads run.max_steps)
    schedule.total = steps;
    if (env.cfg.optim.decay_steps == 0)
      schedule.decay = schedule.shape == LrSchedule::Shape::wsd ? steps / 5 : std::max<std::int64_t>(0, steps - schedule.warmup);
  }
  const Resumed resumed = resume_from_deck(deck, env.cfg, "sft", params, opt);
  if (resumed.loaded.empty())
    log_warn("sft: [checkpoint] load is empty: fine-tuning a randomly initialised model");
  const std::int64_t first_step = resumed.first_step;
  // Tokens trained on so far: carried by the checkpoint this run resumes (the row order is a function of
  // the step, the token count is not).
  std::int64_t tokens_seen =
      first_step > 1 && resumed.data_state.is_object() ? resumed.data_state.value("tokens_consumed", std::int64_t{0}) : 0;

  RunInfo info{.stage = "sft", .deck_path = deck.file(), .resolved_deck = deck.resolved_text(), .world_size = env.world,
               .layout = layout_json(env)};
  RunDir run(env.cfg.run.output_dir, info, env.rank);
  log_info("sft: ", cfg.dense ? "distillation into a " : "", describe_model(cfg), "; ", data.examples(), " examples (",
           data.positions(), " tokens; ", data.truncated(), " truncated to data.seq_len + 1 tokens, ", data.without_loss(),
           " dropped because the prompt fills a row), ", env.cfg.sft.pack ? "packed" : "one per row", " into ",
           data.rows_in_epoch(0), " rows of ", seq, " tokens per epoch (",
           std::round(1000.0 * static_cast<double>(data.positions()) / static_cast<double>(data.rows_in_epoch(0) * seq)) / 10,
           "% filled); ", steps, " steps of ", global, " rows", max_steps > 0 ? " (run.max_steps)" : "",
           " = ", std::round(100.0 * data.epoch_progress(std::min(steps * global, end_row))) / 100, " epoch(s); loss on ", env.cfg.sft.loss_on_prompt ? "prompt and response" : "response", " tokens");

  const double flops_per_token = train_flops_per_token(cfg, seq);
  const std::int64_t log_every = env.cfg.train.log_every, metrics_every = env.cfg.log.metrics_every;
  StageCheckpoints checkpoints(deck, env.cfg, "sft", resumed.parent, info.layout, params, opt);
  const auto data_state = [&](std::int64_t step) {
    nlohmann::json s{{"rows_consumed", step * global}, {"seq_len", seq}, {"tokens_consumed", tokens_seen},
                     {"examples", data.examples()}, {"epoch", data.epoch_progress(std::min(step * global, end_row))}};
    // The lineage's data edge: the file and the checkpoints its samples came from (tools/ckpt.py lineage).
    if (!data.source_checkpoints.empty())
      s["data_from"] = {{"path", std::filesystem::absolute(env.cfg.data.train_path).lexically_normal().string()},
                        {"checkpoints", data.source_checkpoints}};
    return s;
  };
  const Stopwatch phase;
  for (std::int64_t step = first_step; step <= steps; ++step) {
    const Stopwatch step_clock;
    params.zero_grads();
    // This replica's micro-batches: rows of the global batch in data-parallel rank order.
    std::vector<TokenBatch> batches;
    std::vector<double> totals{0.0, 0.0, 0.0};  // counted tokens, filled positions, examples of the global batch
    for (std::int64_t m = 0; m < n_micro; ++m) {
      const std::int64_t first = (step - 1) * global + (dp.rank() * n_micro + m) * micro;
      SftBatch b = data.batch(first, micro, end_row);
      totals[0] += static_cast<double>(b.tokens.counted());
      totals[1] += static_cast<double>(b.filled);
      totals[2] += static_cast<double>(b.examples);
      batches.push_back(std::move(b.tokens));
    }
    sum_over(dp, ctx, totals);
    // Mean cross-entropy over the counted (response) tokens of the whole global batch.
    const float token_weight = static_cast<float>(1.0 / std::max(1.0, totals[0]));
    const float balance_weight = static_cast<float>(1.0 / static_cast<double>(n_micro * replicas));
    const StepSums sums = train_micro_batches(model, batches, token_weight, balance_weight, opt, dp, ctx,
                                              PipelinePlan::from_env(env));

    const double lr = schedule.at(step);
    const Stopwatch optimizer;
    const double grad_norm = opt.step(lr);
    if (cfg.bias_update_gamma > 0 && !sums.expert_counts.empty())
      model.update_router_bias(sums.expert_counts, static_cast<float>(cfg.bias_update_gamma));
    ctx.synchronize();
    const double optimizer_s = optimizer.seconds();

    tokens_seen += static_cast<std::int64_t>(totals[1]);
    const double loss = sums.loss_sum / std::max(1.0, totals[0]);
    const double seconds = step_clock.seconds();
    const double tokens_per_s = static_cast<double>(global * seq) / seconds;  // positions, padding included
    const double mfu = env.peak_flops > 0 ? tokens_per_s * flops_per_token / (env.peak_flops * static_cast<double>(env.world)) : -1;
    const double packing = totals[1] / static_cast<double>(global * seq);
    const double epoch = data.epoch_progress(std::min(step * global, end_row));
    const ExpertLoad load = expert_load(sums.model_expert_counts);
    if (env.rank == 0 && (step % metrics_every == 0 || step == steps)) {
      nlohmann::json rec = {{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}, {"epoch", epoch},
                            {"tokens", tokens_seen}, {"loss_tokens", static_cast<std::int64_t>(totals[0])},
                            {"examples", static_cast<std::int64_t>(totals[2])}, {"packing_efficiency", packing},
                            {"tokens_per_s", tokens_per_s}, {"step_s", seconds}, {"balance_loss", sums.balance_loss},
                            {"time", {{"compute_s", sums.compute_s}, {"grad_reduce_s", sums.grad_reduce_s}, {"optimizer_s", optimizer_s}}}};
      if (!sums.expert_counts.empty()) rec["expert_load"] = load.layers;
      if (cfg.mtp_depth > 0) rec["mtp_loss"] = sums.mtp_loss_sum / std::max(1.0, totals[0]);
      if (mfu >= 0) rec["mfu"] = mfu;
      run.metrics().write(rec);
    }
    if (step % log_every == 0 || step == first_step || step == steps)
      log_info(format_progress({.step = step, .total_steps = steps, .metric_name = "loss", .metric = loss,
                                .tokens_per_s = tokens_per_s, .mfu = mfu, .elapsed_s = phase.seconds(),
                                .steps_done = step - first_step + 1}),
               "  lr ", lr, "  |g| ", grad_norm, "  epoch ", std::round(epoch * 100) / 100, "  packed ",
               std::round(packing * 1000) / 10, "%");
    if (checkpoints.after_step(step, steps, tokens_seen, data_state(step))) return kExitRequeue;
  }
  checkpoints.finish();
  log_info("sft: done at step ", steps, " in ", format_duration(phase.seconds()));
  return 0;
}

}  // namespace r1
