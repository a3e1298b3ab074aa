// The reward_model stage: a scalar head (rm.head [1, D], rm.bias [1]) on the policy architecture, read
// at each sequence's last token (its EOS) from the normalised final hidden state, trained on the synthetic
// world's preference pairs: pairwise (Bradley-Terry, the helpfulness RM) or pointwise (binary
// cross-entropy on safe/unsafe, the safety RM). Data parallel like sft; the LM head and MTP are frozen.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "data/reasoning_world.hpp"
#include "data/world_text.hpp"
#include "kernels/elementwise.hpp"
#include "model/model.hpp"
#include "rl/reward_model_loss.hpp"
#include "rl/reward_scorer.hpp"
#include "run/metrics.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/optimizer.hpp"

namespace r1 {

namespace {

// Two scored sequences: (chosen, rejected) for pairwise, (safe, unsafe) = labels (1, 0) for pointwise.
struct RmPair {
  std::vector<std::int32_t> first, second;
};

// A seeded permutation of [0, n) per epoch (splitmix64-driven Fisher-Yates), so every rank of every
// layout reads the same pair at the same global index.
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(epoch) + 0x5EED;
  const auto next = [&state] {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<std::size_t>(i)], order[next() % static_cast<std::uint64_t>(i + 1)]);
  return order;
}

// One micro-batch: 2 rows per pair, right-padded; the reward is read at each row's last token.
struct RmBatch {
  TokenBatch tokens;
  std::vector<std::int32_t> last;  // flattened row index (b * seq + position) of each row's last token
  std::vector<bool> valid;         // per pair
};

RmBatch make_batch(const std::vector<const RmPair*>& pairs, std::int64_t seq) {
  RmBatch b;
  b.tokens.batch = 2 * static_cast<std::int64_t>(pairs.size());
  b.tokens.seq = seq;
  b.tokens.ids.assign(static_cast<std::size_t>(b.tokens.batch * seq), kTokPad);
  b.tokens.targets.assign(b.tokens.ids.size(), -1);  // no next-token loss anywhere
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    b.valid.push_back(pairs[k] != nullptr);
    for (int side = 0; side < 2; ++side) {
      const auto row = static_cast<std::int64_t>(2 * k + static_cast<std::size_t>(side));
      std::int64_t n = 1;  // a padding row: its "last token" is its first pad
      if (pairs[k]) {
        const auto& t = side == 0 ? pairs[k]->first : pairs[k]->second;
        n = static_cast<std::int64_t>(t.size());
        std::copy(t.begin(), t.end(), b.tokens.ids.begin() + row * seq);
      }
      b.last.push_back(static_cast<std::int32_t>(row * seq + n - 1));
    }
  }
  return b;
}

}  // namespace

int run_reward_model(StageEnv& env) {
  const Deck& deck = env.deck;
  const kernels::Context& ctx = env.ctx;
  parallel::Communicator& dp = *env.comms->dp;
  const ModelConfig& cfg = env.cfg.model;
  const BatchPlan plan = BatchPlan::from_config(env.cfg, dp.size());
  const std::int64_t seq = plan.seq, micro = plan.micro, replicas = plan.replicas, global = plan.global, n_micro = plan.n_micro;
  const bool pairwise = env.cfg.reward_model.objective == RmObjective::pairwise;
  const std::int64_t pairs_per_micro = micro / 2, pairs_per_step = global / 2;

  // Data: data.synthetic_examples preference pairs of run.seed; the last 20% by index are held out. The
  // helpfulness RM (pairwise) reads the helpfulness pairs, the safety RM (pointwise) the harmlessness ones.
  const auto seed = static_cast<std::uint64_t>(env.cfg.run.seed);
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(env.cfg.data.tokenizer);
  if (cfg.vocab_size < tokenizer->vocab_size())
    deck.fail("model.vocab_size", detail::concat("the tokenizer (", tokenizer->source(), ") has ", tokenizer->vocab_size(),
                                                 " tokens; the model's vocabulary must hold them all"));
  const std::int32_t eos = tokenizer->special_id("<|eos|>");
  const std::int64_t n_all = env.cfg.data.synthetic_examples, n_held_from = n_all - n_all / 5;
  std::vector<RmPair> train, held;
  std::int64_t truncated = 0;
  const auto encode = [&](const std::string& prompt, const std::string& response) {
    std::vector<std::int32_t> t = tokenizer->encode(chat_prompt(prompt) + response);
    t.push_back(eos);
    if (static_cast<std::int64_t>(t.size()) > seq) {  // keep the start; the reward then reads the last kept token
      t.resize(static_cast<std::size_t>(seq));
      ++truncated;
    }
    return t;
  };
  const std::vector<PreferencePair> all = generate_preference_pairs(n_all, seed);
  for (std::int64_t i = 0; i < n_all; ++i) {
    const PreferencePair& p = all[static_cast<std::size_t>(i)];
    if ((p.kind == PreferenceKind::helpfulness) != pairwise) continue;
    (i < n_held_from ? train : held).push_back({encode(p.prompt, p.chosen), encode(p.prompt, p.rejected)});
  }
  R1_REQUIRE(!train.empty() && !held.empty(), "reward_model: data.synthetic_examples = ", n_all, " gives ", train.size(),
             " training and ", held.size(), " held-out ", pairwise ? "helpfulness" : "harmlessness", " pairs; raise it");
  const auto n_train = static_cast<std::int64_t>(train.size());

  // run.max_steps > 0 fixes the step count (reading on into later epochs); 0 runs [reward_model] epochs,
  // the last step padded with pairs that carry no loss.
  const std::int64_t epochs = env.cfg.reward_model.epochs, max_steps = env.cfg.run.max_steps;
  const std::int64_t steps = max_steps > 0 ? max_steps : (epochs * n_train + pairs_per_step - 1) / pairs_per_step;
  const std::int64_t end_pair = max_steps > 0 ? std::numeric_limits<std::int64_t>::max() : epochs * n_train;

  ParamStore params(ctx, env.compute_dtype);
  Model model(cfg, params);
  model.full_recompute = plan.full_recompute;
  Param& head = params.add("rm.head", {1, cfg.dim}, Init::normal);
  Param& bias = params.add("rm.bias", {1}, Init::zeros, /*decay=*/false);
  // The LM head and the MTP module take no part in the reward: frozen, so AdamW's decay leaves them as loaded.
  for (const auto& p : params.all())
    if ((p->name == "head" && !cfg.tie_embeddings) || p->name.rfind("mtp.", 0) == 0) p->trainable = false;
  params.initialize(seed, cfg.init_std);
  AdamW opt(params, AdamWConfig::from_config(env.cfg.optim), optimizer_groups(env, /*zero1=*/false));
  LrSchedule schedule = LrSchedule::from_config(env.cfg.optim, max_steps);
  if (max_steps == 0) {  // the schedule's length is the epochs' steps (LrSchedule reads run.max_steps)
    schedule.total = steps;
    if (env.cfg.optim.decay_steps == 0)
      schedule.decay = schedule.shape == LrSchedule::Shape::wsd ? steps / 5 : std::max<std::int64_t>(0, steps - schedule.warmup);
  }
  // The policy / SFT checkpoint has no rm.* tensors: they keep their initial values.
  const Resumed resumed = resume_from_deck(deck, env.cfg, "reward_model", params, opt, "rm.");
  if (resumed.loaded.empty()) log_warn("reward_model: [checkpoint] load is empty: training a reward model from a random initialisation");
  const std::int64_t first_step = resumed.first_step;
  std::int64_t tokens_seen =
      first_step > 1 && resumed.data_state.is_object() ? resumed.data_state.value("tokens_consumed", std::int64_t{0}) : 0;

  RunInfo info{.stage = "reward_model", .deck_path = deck.file(), .resolved_deck = deck.resolved_text(), .world_size = env.world,
               .layout = {{"data", replicas}, {"tensor", 1}, {"pipeline", 1}, {"expert", 1}}};
  RunDir run(env.cfg.run.output_dir, info, env.rank);
  log_info("reward_model: ", describe_model(cfg), " + a scalar head; ", pairwise ? "pairwise (Bradley-Terry)" : "pointwise (safe/unsafe)",
           " on ", n_train, " training and ", held.size(), " held-out ", pairwise ? "helpfulness" : "harmlessness", " pairs (",
           truncated, " sequences truncated to data.seq_len); ", steps, " steps of ", pairs_per_step, " pairs",
           max_steps > 0 ? " (run.max_steps)" : "");

  const float balance_weight = static_cast<float>(1.0 / static_cast<double>(n_micro * replicas));
  const auto D = static_cast<std::size_t>(cfg.dim);
  std::vector<double> w(D + 1);  // rm.head then rm.bias on the host, refreshed after each optimizer step
  const auto read_head = [&] {
    Tensor h = Tensor::host({1, cfg.dim}, DType::f32), b = Tensor::host({1}, DType::f32);
    copy(h, head.master);
    copy(b, bias.master);
    for (std::size_t d = 0; d < D; ++d) w[d] = h.data<float>()[d];
    w[D] = b.data<float>()[0];
  };
  // The forward of a micro-batch and its rewards r = rm.head . h_last + rm.bias, with the last-token rows
  // h (f32, host; hidden_rows, shared with the scorer GRPO's learned rewards use).
  struct Scored {
    Model::SavedPtr saved;
    ForwardResult fr;
    DeviceBatch db;
    std::vector<float> h;
    std::vector<double> r;
  };
  const auto score = [&](const RmBatch& b) {
    Scored s;
    s.db = model.upload(b.tokens);
    s.saved = model.forward(s.db, s.fr);
    s.h = hidden_rows(ctx, model, *s.saved, b.last);
    for (std::size_t i = 0; i < b.last.size(); ++i) s.r.push_back(linear_reward(w, s.h.data() + i * D));
    return s;
  };
  const auto objective = [&](const std::vector<double>& r, const std::vector<bool>& valid, double weight) {
    if (pairwise) return pairwise_loss(r, valid, weight);
    std::vector<int> labels;
    std::vector<bool> item_valid;
    for (bool v : valid) {
      labels.insert(labels.end(), {1, 0});
      item_valid.insert(item_valid.end(), {v, v});
    }
    return pointwise_loss(r, labels, item_valid, weight);
  };
  // Held-out loss and accuracy (per pair, or per response for pointwise): micro-batches dealt round-robin
  // over the data-parallel ranks, summed.
  const auto evaluate = [&] {
    std::vector<double> sums{0, 0};
    const auto n_held = static_cast<std::int64_t>(held.size());
    for (std::int64_t c = 0, first = 0; first < n_held; ++c, first += pairs_per_micro) {
      if (c % dp.size() != dp.rank()) continue;
      std::vector<const RmPair*> pairs;
      for (std::int64_t k = first; k < first + pairs_per_micro; ++k) pairs.push_back(k < n_held ? &held[static_cast<std::size_t>(k)] : nullptr);
      const RmBatch b = make_batch(pairs, seq);
      const Scored s = score(b);
      const RewardLoss l = objective(s.r, b.valid, 0.0);
      sums[0] += l.loss_sum;
      sums[1] += static_cast<double>(l.correct);
    }
    sum_over(dp, ctx, sums);
    const double items = static_cast<double>(n_held) * (pairwise ? 1.0 : 2.0);
    return std::pair{sums[0] / items, sums[1] / items};
  };

  const std::int64_t log_every = env.cfg.train.log_every, metrics_every = env.cfg.log.metrics_every;
  StageCheckpoints checkpoints(deck, env.cfg, "reward_model", resumed.parent, info.layout, params, opt);
  const auto data_state = [&](std::int64_t step) {
    return nlohmann::json{{"pairs_consumed", std::min(step * pairs_per_step, end_pair)}, {"tokens_consumed", tokens_seen},
                          {"train_pairs", n_train}, {"epoch", static_cast<double>(std::min(step * pairs_per_step, end_pair)) / static_cast<double>(n_train)}};
  };
  std::int64_t order_epoch = -1;
  std::vector<std::int64_t> order;
  const Stopwatch phase;
  for (std::int64_t step = first_step; step <= steps; ++step) {
    const Stopwatch step_clock;
    params.zero_grads();
    read_head();
    // Pairs of the whole global batch that carry a loss (known to every rank without communication).
    const std::int64_t step_first = (step - 1) * pairs_per_step;
    const std::int64_t valid_pairs = std::clamp<std::int64_t>(end_pair - step_first, 0, pairs_per_step);
    const double items = static_cast<double>(valid_pairs) * (pairwise ? 1.0 : 2.0);
    const double weight = 1.0 / std::max(1.0, items);  // the loss is the mean over the global batch
    std::vector<double> grad_w(D + 1, 0.0);
    std::vector<double> sums{0, 0, 0, 0};  // loss sum, correct, margin sum (pairwise: r_c - r_r), filled tokens
    std::vector<std::vector<std::int64_t>> counts(static_cast<std::size_t>(model.moe_layer_count()),
                                                  std::vector<std::int64_t>(static_cast<std::size_t>(cfg.n_routed_experts), 0));
    const Stopwatch compute;
    for (std::int64_t m = 0; m < n_micro; ++m) {
      const std::int64_t first = step_first + (dp.rank() * n_micro + m) * pairs_per_micro;
      std::vector<const RmPair*> pairs;
      for (std::int64_t g = first; g < first + pairs_per_micro; ++g) {
        if (g >= end_pair) {
          pairs.push_back(nullptr);
          continue;
        }
        if (g / n_train != order_epoch) {
          order_epoch = g / n_train;
          order = epoch_order(n_train, seed, order_epoch);
        }
        pairs.push_back(&train[static_cast<std::size_t>(order[static_cast<std::size_t>(g % n_train)])]);
        sums[3] += static_cast<double>(pairs.back()->first.size() + pairs.back()->second.size());
      }
      const RmBatch b = make_batch(pairs, seq);
      Scored s = score(b);
      const RewardLoss l = objective(s.r, b.valid, weight);
      sums[0] += l.loss_sum;
      sums[1] += static_cast<double>(l.correct);
      for (std::size_t k = 0; k < b.valid.size(); ++k)
        if (b.valid[k]) sums[2] += s.r[2 * k] - s.r[2 * k + 1];
      // dr -> rm.head / rm.bias (host) and -> d final_hidden = dr * rm.head at each last token, zero elsewhere.
      const std::int64_t T = b.tokens.batch * seq;
      Tensor dh = Tensor::host({T, cfg.dim}, DType::f32);
      std::fill(dh.data<float>(), dh.data<float>() + dh.numel(), 0.0f);
      for (std::size_t i = 0; i < b.last.size(); ++i) {
        const double dr = l.dr[i];
        if (dr == 0.0) continue;
        float* row = dh.data<float>() + static_cast<std::int64_t>(b.last[i]) * cfg.dim;
        for (std::size_t d = 0; d < D; ++d) {
          grad_w[d] += dr * s.h[i * D + d];
          row[d] = static_cast<float>(dr * w[d]);
        }
        grad_w[D] += dr;
      }
      model.backward_from_hidden(s.db, *s.saved, ctx.to_here(dh), balance_weight);
      for (std::size_t layer = 0; layer < s.fr.expert_counts.size(); ++layer) {
        Tensor c = Tensor::host(s.fr.expert_counts[layer].shape(), DType::i32);
        copy(c, s.fr.expert_counts[layer]);
        for (std::int64_t e = 0; e < c.numel(); ++e) counts[layer][static_cast<std::size_t>(e)] += c.data<std::int32_t>()[e];
      }
    }
    {  // the scalar head's gradients, into the parameters' gradients (then reduced with the rest)
      Tensor gh = Tensor::host({1, cfg.dim}, DType::f32), gb = Tensor::host({1}, DType::f32);
      for (std::size_t d = 0; d < D; ++d) gh.data<float>()[d] = static_cast<float>(grad_w[d]);
      gb.data<float>()[0] = static_cast<float>(grad_w[D]);
      kernels::axpy(ctx, 1.0f, ctx.to_here(gh), head.grad);
      kernels::axpy(ctx, 1.0f, ctx.to_here(gb), bias.grad);
    }
    ctx.synchronize();
    const double compute_s = compute.seconds();
    opt.reduce_gradients();
    for (const auto& layer : counts) sums.insert(sums.end(), layer.begin(), layer.end());
    sum_over(dp, ctx, sums);
    for (std::size_t layer = 0, k = 4; layer < counts.size(); ++layer)
      for (auto& c : counts[layer]) c = static_cast<std::int64_t>(std::llround(sums[k++]));

    const double lr = schedule.at(step);
    const double grad_norm = opt.step(lr);
    if (cfg.bias_update_gamma > 0 && !counts.empty()) model.update_router_bias(counts, static_cast<float>(cfg.bias_update_gamma));
    ctx.synchronize();

    tokens_seen += static_cast<std::int64_t>(sums[3]);
    const double loss = sums[0] / std::max(1.0, items), accuracy = sums[1] / std::max(1.0, items);
    const double seconds = step_clock.seconds();
    const bool metrics = step % metrics_every == 0 || step == steps, logged = step % log_every == 0 || step == first_step || step == steps;
    // The held-out set is scored at every log step (and with the metrics record at the last step).
    std::pair<double, double> heldout{-1, -1};
    if (logged) heldout = evaluate();
    if (env.rank == 0 && metrics) {
      nlohmann::json rec = {{"step", step}, {"loss", loss}, {"accuracy", accuracy}, {"lr", lr}, {"grad_norm", grad_norm},
                            {"pairs", valid_pairs}, {"tokens", tokens_seen}, {"step_s", seconds},
                            {"epoch", static_cast<double>(std::min(step * pairs_per_step, end_pair)) / static_cast<double>(n_train)},
                            {"time", {{"compute_s", compute_s}}}};
      if (valid_pairs > 0) rec["reward_margin"] = sums[2] / static_cast<double>(valid_pairs);
      if (logged) {
        rec["heldout_loss"] = heldout.first;
        rec["heldout_accuracy"] = heldout.second;
      }
      if (!counts.empty()) rec["expert_load"] = expert_load(counts).layers;
      run.metrics().write(rec);
    }
    if (logged)
      log_info(format_progress({.step = step, .total_steps = steps, .metric_name = "loss", .metric = loss,
                                .tokens_per_s = static_cast<double>(global * seq) / seconds, .mfu = -1,
                                .elapsed_s = phase.seconds(), .steps_done = step - first_step + 1}),
               "  lr ", lr, "  |g| ", grad_norm, "  accuracy ", std::round(accuracy * 1000) / 1000, "  held-out accuracy ",
               std::round(heldout.second * 1000) / 1000, " (loss ", heldout.first, ")");
    if (checkpoints.after_step(step, steps, tokens_seen, data_state(step))) return kExitRequeue;
  }
  checkpoints.finish();
  log_info("reward_model: done at step ", steps, " in ", format_duration(phase.seconds()));
  return 0;
}

}  // namespace r1
