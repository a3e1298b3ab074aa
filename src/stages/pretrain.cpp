// The pretrain stage: next-token training from scratch on a corpus, data parallel over the world.
#include <algorithm>
#include <cmath>

#include "core/log.hpp"
#include "data/corpus.hpp"
#include "run/host_reduce.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "train/trainer.hpp"

namespace r1 {

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
    if (trainer.end_step(r, report)) return kExitRequeue;
  }
  trainer.finish();
  return 0;
}

}  // namespace r1
