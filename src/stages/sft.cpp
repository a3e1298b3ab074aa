// The sft stage (cold start, the 800k SFT of the base, distillation into a dense student): next-token
// training on packed prompt/response rows with the loss on response tokens only, data parallel over the
// world, epochs or a step count.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/log.hpp"
#include "data/sft_data.hpp"
#include "run/host_reduce.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "train/trainer.hpp"

namespace r1 {

int run_sft(StageEnv& env) {
  const Deck& deck = env.deck;
  parallel::Communicator& dp = *env.comms->dp;
  TrainerOptions options = TrainerOptions::from_env(env, "sft");
  const ModelConfig& cfg = options.model;
  const std::int64_t seq = options.batch.seq, micro = options.batch.micro, global = options.batch.global;

  SftData data = SftData::from_config(env.cfg, deck);
  // run.max_steps > 0 fixes the step count (reading on into later epochs if it must); 0 runs [sft] epochs,
  // the last step padded where the rows run out.
  const std::int64_t epochs = env.cfg.sft.epochs, max_steps = env.cfg.run.max_steps;
  const std::int64_t epoch_rows = data.rows(epochs);
  options.steps = max_steps > 0 ? max_steps : (epoch_rows + global - 1) / global;
  const std::int64_t steps = options.steps;
  const std::int64_t end_row = max_steps > 0 ? std::numeric_limits<std::int64_t>::max() : epoch_rows;
  const bool pack = env.cfg.sft.pack, loss_on_prompt = env.cfg.sft.loss_on_prompt;
  // The lineage's data edge: the file and the checkpoints its samples came from (tools/ckpt.py lineage).
  nlohmann::json data_from;
  if (!data.source_checkpoints.empty())
    data_from = {{"path", std::filesystem::absolute(env.cfg.data.train_path).lexically_normal().string()},
                 {"checkpoints", data.source_checkpoints}};

  Trainer trainer(env, options);
  if (trainer.resumed().loaded.empty())
    log_warn("sft: [checkpoint] load is empty: fine-tuning a randomly initialised model");
  // Tokens trained on so far: carried by the checkpoint this run resumes (the row order is a function of
  // the step, the token count is not).
  std::int64_t tokens_seen = trainer.resumed().tokens_consumed();
  log_info("sft: ", cfg.dense ? "distillation into a " : "", describe_model(cfg), "; ", data.examples(), " examples (",
           data.positions(), " tokens; ", data.truncated(), " truncated to data.seq_len + 1 tokens, ", data.without_loss(),
           " dropped because the prompt fills a row) in the ", chat_template_name(data.chat_template), " template, ", pack ? "packed" : "one per row", " into ",
           data.rows_in_epoch(0), " rows of ", seq, " tokens per epoch (",
           std::round(1000.0 * static_cast<double>(data.positions()) / static_cast<double>(data.rows_in_epoch(0) * seq)) / 10,
           "% filled); ", steps, " steps of ", global, " rows", max_steps > 0 ? " (run.max_steps)" : "",
           " = ", std::round(100.0 * data.epoch_progress(std::min(steps * global, end_row))) / 100, " epoch(s); loss on ",
           loss_on_prompt ? "prompt and response" : "response", " tokens");

  for (std::int64_t step = trainer.first_step(); step <= steps; ++step) {
    trainer.begin_step(step);
    // This replica's micro-batches: rows of the global batch in data-parallel rank order.
    std::vector<TokenBatch> batches;
    std::vector<double> totals{0.0, 0.0, 0.0};  // counted tokens, filled positions, examples of the global batch
    for (std::int64_t m = 0; m < options.batch.n_micro; ++m) {
      const std::int64_t first = (step - 1) * global + (dp.rank() * options.batch.n_micro + m) * micro;
      SftBatch b = data.batch(first, micro, end_row);
      totals[0] += static_cast<double>(b.tokens.counted());
      totals[1] += static_cast<double>(b.filled);
      totals[2] += static_cast<double>(b.examples);
      batches.push_back(std::move(b.tokens));
    }
    sum_over(dp, env.ctx, totals);
    // Mean cross-entropy over the counted (response) tokens of the whole global batch.
    const StepResult r = trainer.step(batches, totals[0]);

    tokens_seen += static_cast<std::int64_t>(totals[1]);
    const double packing = totals[1] / static_cast<double>(global * seq);  // of the positions, padding included
    const double epoch = data.epoch_progress(std::min(step * global, end_row));
    StepReport report{.record = {{"loss", r.loss}, {"epoch", epoch}, {"tokens", tokens_seen},
                                 {"loss_tokens", static_cast<std::int64_t>(totals[0])},
                                 {"examples", static_cast<std::int64_t>(totals[2])}, {"packing_efficiency", packing}},
                      .metric = r.loss,
                      .extras = detail::concat("  epoch ", std::round(epoch * 100) / 100, "  packed ",
                                               std::round(packing * 1000) / 10, "%"),
                      .tokens = tokens_seen,
                      .data_state = {{"rows_consumed", step * global}, {"seq_len", seq}, {"tokens_consumed", tokens_seen},
                                     {"examples", data.examples()}, {"epoch", epoch}}};
    if (!data_from.is_null()) report.data_state["data_from"] = data_from;
    if (trainer.end_step(r, report)) return kExitRequeue;
  }
  trainer.finish();
  return 0;
}

}  // namespace r1
