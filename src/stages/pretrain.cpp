// The pretrain stage: next-token training from scratch on a corpus, data parallel over the world.
#include <algorithm>
#include <cmath>
#include <optional>

#include "core/log.hpp"
#include "data/corpus.hpp"
#include "run/host_reduce.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "train/trainer.hpp"

namespace r1 {
namespace {

// The mean next-token loss of the first `sequences` sequences of the held-out corpus, without a gradient.
// Every replica scores the same number of micro-batches (the expert-parallel all-to-alls run in lockstep);
// rows past the set carry no target. Sums over the data-parallel group.
double held_out_loss(const Model& model, const Corpus& held_out, const BatchPlan& plan, std::int64_t sequences,
                     parallel::Communicator& dp, const kernels::Context& ctx) {
  sequences = std::min(sequences, held_out.sequences(plan.seq));
  const std::int64_t per_pass = dp.size() * plan.micro, passes = (sequences + per_pass - 1) / per_pass;
  std::vector<double> sums{0.0, 0.0};  // loss, counted tokens
  for (std::int64_t m = 0; m < passes; ++m) {
    const std::int64_t first = (m * dp.size() + dp.rank()) * plan.micro;
    TokenBatch b = held_out.batch(first, plan.micro, plan.seq, 0, false);
    for (std::int64_t r = std::max<std::int64_t>(0, sequences - first); r < plan.micro; ++r)
      std::fill_n(b.targets.begin() + r * plan.seq, plan.seq, -1);
    const Tensor losses = model.score_tokens(model.upload(b));
    Tensor host = Tensor::host(losses.shape(), DType::f32);
    copy(host, losses);
    for (std::size_t t = 0; t < b.targets.size(); ++t)
      if (b.targets[t] >= 0) sums[0] += host.data<float>()[t];
    sums[1] += static_cast<double>(b.counted());
  }
  sum_over(dp, ctx, sums);
  return sums[0] / sums[1];
}

}  // namespace

int run_pretrain(StageEnv& env) {
  const Deck& deck = env.deck;
  parallel::Communicator& dp = *env.comms->dp;
  TrainerOptions options = TrainerOptions::from_env(env, "pretrain");
  const ModelConfig& cfg = options.model;
  const BatchPlan& plan = options.batch;
  options.steps = env.cfg.run.max_steps;
  const auto seed = static_cast<std::uint64_t>(env.cfg.run.seed);
  const bool shuffle = env.cfg.data.shuffle;

  const Corpus corpus = Corpus::from_config(env.cfg, deck);
  const std::int64_t eval_every = env.cfg.train.eval_every;
  const std::optional<Corpus> held_out =
      eval_every > 0 ? std::optional(Corpus::from_file("data.eval_path", env.cfg.data.eval_path, env.cfg, deck)) : std::nullopt;
  Trainer trainer(env, options);
  log_info("pretrain: ", describe_model(cfg), "; ", corpus.tokens(), " corpus tokens; global batch ", plan.global, " x ",
           plan.seq, " tokens (", plan.n_micro, " micro-batch(es) of ", plan.micro, " per replica)");

  for (std::int64_t step = trainer.first_step(); step <= trainer.last_step(); ++step) {
    trainer.begin_step(step);
    // This replica's micro-batches: rows of the global batch in data-parallel rank order.
    std::vector<TokenBatch> batches;
    std::vector<double> counted{0.0};  // counted tokens of the global batch
    for (std::int64_t m = 0; m < plan.n_micro; ++m) {
      const std::int64_t first = (step - 1) * plan.global + (dp.rank() * plan.n_micro + m) * plan.micro;
      batches.push_back(corpus.batch(first, plan.micro, plan.seq, seed, shuffle));
      counted[0] += static_cast<double>(batches.back().counted());
    }
    sum_over(dp, env.ctx, counted);
    const StepResult r = trainer.step(batches, counted[0]);

    const std::int64_t tokens = step * plan.global * plan.seq;
    StepReport report{.record = {{"loss", r.loss}, {"tokens", tokens}}, .metric = r.loss, .tokens = tokens,
                      .data_state = {{"sequences_consumed", step * plan.global}, {"seq_len", plan.seq}}};
    if (!r.sums.expert_counts.empty()) {
      const double worst = expert_load(r.sums.model_expert_counts).worst;  // the worst layer's max / mean
      report.extras = detail::concat("  expert load max/mean ", std::round(worst * 100) / 100);
    }
    if (held_out && step % eval_every == 0) {
      const double eval_loss = held_out_loss(trainer.model(), *held_out, plan, env.cfg.train.eval_sequences, dp, env.ctx);
      report.record["eval_loss"] = eval_loss;
      report.extras += detail::concat("  eval loss ", eval_loss);
    }
    if (trainer.end_step(r, report)) return kExitRequeue;
  }
  trainer.finish();
  return 0;
}

}  // namespace r1
