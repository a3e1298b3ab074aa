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
  const ModelConfig cfg = model_config_from_deck(deck);
  const BatchPlan plan = BatchPlan::from_deck(deck, dp.size(), cfg.max_seq_len);
  const std::int64_t seq = plan.seq, micro = plan.micro, global = plan.global, n_micro = plan.n_micro;
  const std::int64_t max_steps = deck.get_int("run.max_steps");
  if (max_steps <= 0) deck.fail("run.max_steps", "pretrain needs a number of optimizer steps (> 0)");
  const auto seed = static_cast<std::uint64_t>(deck.get_int("run.seed"));
  const bool shuffle = deck.get_bool("data.shuffle");

  const Corpus corpus = Corpus::from_deck(deck, cfg.vocab_size);
  Trainer trainer(env, {.stage = "pretrain", .model = cfg, .groups = model_groups(env), .batch = plan, .steps = max_steps});
  log_info("pretrain: ", describe_model(cfg), "; ", corpus.tokens(), " corpus tokens; global batch ", global, " x ", seq,
           " tokens (", n_micro, " micro-batch(es) of ", micro, " per replica)");

  for (std::int64_t step = trainer.first_step(); step <= max_steps; ++step) {
    trainer.begin_step(step);
    // This replica's micro-batches: rows of the global batch in data-parallel rank order.
    std::vector<TokenBatch> batches;
    std::vector<double> counted{0.0};  // counted tokens of the global batch
    for (std::int64_t m = 0; m < n_micro; ++m) {
      const std::int64_t first = (step - 1) * global + (dp.rank() * n_micro + m) * micro;
      batches.push_back(corpus.batch(first, micro, seq, seed, shuffle));
      counted[0] += static_cast<double>(batches.back().counted());
    }
    sum_over(dp, env.ctx, counted);
    const StepResult r = trainer.step(batches, counted[0]);

    const ExpertLoad load = expert_load(r.sums.model_expert_counts);
    StepReport report{.record = {{"loss", r.loss}, {"tokens", step * global * seq}}, .metric = r.loss,
                      .tokens = step * global * seq, .data_state = {{"sequences_consumed", step * global}, {"seq_len", seq}}};
    if (!r.sums.expert_counts.empty()) report.extras = detail::concat("  expert load max/mean ", std::round(load.worst * 100) / 100);
    if (trainer.end_step(r, report)) return kExitRequeue;
  }
  trainer.finish();
  return 0;
}

}  // namespace r1
