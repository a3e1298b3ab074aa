// The reward_model stage: a scalar head (rm.head [1, D], rm.bias [1]) on the policy architecture, read
// at each sequence's last token (its EOS) from the normalised final hidden state, trained on the synthetic
// world's preference pairs: pairwise (Bradley-Terry, the helpfulness RM) or pointwise (binary
// cross-entropy on safe/unsafe, the safety RM). Data parallel like sft; the LM head and MTP are frozen.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/log.hpp"
#include "data/chat_template.hpp"
#include "data/reasoning_world.hpp"
#include "data/world_text.hpp"
#include "kernels/elementwise.hpp"
#include "rl/reward_model_loss.hpp"
#include "rl/reward_scorer.hpp"
#include "run/host_reduce.hpp"
#include "run/signals.hpp"
#include "stages/stage.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/trainer.hpp"

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

// rm.head and rm.bias beside the model's parameters. The LM head and the MTP module take no part in the
// reward: frozen, so AdamW's decay leaves them as loaded.
void add_reward_head(ParamStore& params, const ModelConfig& cfg) {
  params.add("rm.head", {1, cfg.dim}, Init::normal);
  params.add("rm.bias", {1}, Init::zeros, /*decay=*/false);
  for (const auto& p : params.all())
    if ((p->name == "head" && !cfg.tie_embeddings) || p->name.rfind("mtp.", 0) == 0) p->trainable = false;
}

// The pairs of the stage's objective from data.synthetic_examples preference pairs of run.seed, the
// last 20% by index held out: the helpfulness RM (pairwise) reads the helpfulness pairs, the safety RM
// (pointwise) the harmlessness ones. Each sequence is the exchange in reward_model_format (data.chat_template):
// the templated prompt, the response and its end token.
struct RmData {
  std::vector<RmPair> train, held;
  std::int64_t truncated = 0;  // sequences cut to data.seq_len
};

RmData load_pairs(const Deck& deck, const RunConfig& run, const ModelConfig& cfg, std::int64_t seq, bool pairwise,
                  std::uint64_t seed) {
  const DataConfig& data = run.data;
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(data.tokenizer);
  if (cfg.vocab_size < tokenizer->vocab_size())
    deck.fail("model.vocab_size", detail::concat("the tokenizer (", tokenizer->source(), ") has ", tokenizer->vocab_size(),
                                                 " tokens; the model's vocabulary must hold them all"));
  const PromptFormat format = reward_model_format(run, deck, *tokenizer);
  const std::int64_t n_all = data.synthetic_examples, n_held_from = n_all - n_all / 5;
  RmData d;
  const auto encode = [&](const std::string& prompt, const std::string& response) {
    std::vector<std::int32_t> t = format.exchange(prompt, response);
    if (static_cast<std::int64_t>(t.size()) > seq) {  // keep the start; the reward then reads the last kept token
      t.resize(static_cast<std::size_t>(seq));
      ++d.truncated;
    }
    return t;
  };
  const std::vector<PreferencePair> all = generate_preference_pairs(n_all, seed, preference_world(data.preference_pairs, data.preference_label_noise));
  for (std::int64_t i = 0; i < n_all; ++i) {
    const PreferencePair& p = all[static_cast<std::size_t>(i)];
    if ((p.kind == PreferenceKind::helpfulness) != pairwise) continue;
    (i < n_held_from ? d.train : d.held).push_back({encode(p.prompt, p.chosen), encode(p.prompt, p.rejected)});
  }
  R1_REQUIRE(!d.train.empty() && !d.held.empty(), "reward_model: data.synthetic_examples = ", n_all, " gives ", d.train.size(),
             " training and ", d.held.size(), " held-out ", pairwise ? "helpfulness" : "harmlessness", " pairs; raise it");
  return d;
}

// The training pairs in global order: epoch e is a seeded permutation of them.
class PairOrder {
 public:
  PairOrder(const std::vector<RmPair>& pairs, std::uint64_t seed) : pairs_(pairs), seed_(seed) {}
  const RmPair& at(std::int64_t g) {
    const auto n = static_cast<std::int64_t>(pairs_.size());
    if (g / n != epoch_) {
      epoch_ = g / n;
      order_ = epoch_order(n, seed_, epoch_);
    }
    return pairs_[static_cast<std::size_t>(order_[static_cast<std::size_t>(g % n)])];
  }

 private:
  const std::vector<RmPair>& pairs_;
  std::uint64_t seed_;
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> order_;
};

// The scalar head rm.head [1, D], rm.bias [1] on the model's normalised final hidden state: rewards,
// the objective, and the backward of a micro-batch into the model and the head.
class RewardHead {
 public:
  // The forward of a micro-batch and its rewards r = rm.head . h_last + rm.bias, with the last-token rows
  // h (f32, host; hidden_rows, shared with the scorer GRPO's learned rewards use).
  struct Scored {
    Model::SavedPtr saved;
    ForwardResult fr;
    DeviceBatch db;
    std::vector<float> h;
    std::vector<double> r;
  };

  RewardHead(Model& model, const kernels::Context& ctx, bool pairwise)
      : model_(model), ctx_(ctx), pairwise_(pairwise), head_(model.params().get("rm.head")),
        bias_(model.params().get("rm.bias")), dim_(static_cast<std::size_t>(model.config().dim)), w_(dim_ + 1) {}

  // rm.head then rm.bias on the host, refreshed after each optimizer step.
  void read() {
    Tensor h = Tensor::host({1, model_.config().dim}, DType::f32), b = Tensor::host({1}, DType::f32);
    copy(h, head_.master);
    copy(b, bias_.master);
    for (std::size_t d = 0; d < dim_; ++d) w_[d] = h.data<float>()[d];
    w_[dim_] = b.data<float>()[0];
  }

  Scored score(const RmBatch& b) const {
    Scored s;
    s.db = model_.upload(b.tokens);
    s.saved = model_.forward(s.db, s.fr);
    s.h = hidden_rows(ctx_, model_, *s.saved, b.last);
    for (std::size_t i = 0; i < b.last.size(); ++i) s.r.push_back(linear_reward(w_, s.h.data() + i * dim_));
    return s;
  }

  // The loss per pair (pairwise) or per response (pointwise: first safe, second unsafe).
  RewardLoss objective(const std::vector<double>& r, const std::vector<bool>& valid, double weight) const {
    if (pairwise_) return pairwise_loss(r, valid, weight);
    std::vector<int> labels;
    std::vector<bool> item_valid;
    for (bool v : valid) {
      labels.insert(labels.end(), {1, 0});
      item_valid.insert(item_valid.end(), {v, v});
    }
    return pointwise_loss(r, labels, item_valid, weight);
  }

  // dr -> rm.head / rm.bias (host, into grad_w) and -> d final_hidden = dr * rm.head at each last token,
  // zero elsewhere, through the model.
  void backward(const RmBatch& b, Scored& s, const RewardLoss& l, float balance_weight, std::vector<double>& grad_w) const {
    const std::int64_t dim = model_.config().dim, T = b.tokens.batch * b.tokens.seq;
    Tensor dh = Tensor::host({T, dim}, DType::f32);
    std::fill(dh.data<float>(), dh.data<float>() + dh.numel(), 0.0f);
    for (std::size_t i = 0; i < b.last.size(); ++i) {
      const double dr = l.dr[i];
      if (dr == 0.0) continue;
      float* row = dh.data<float>() + static_cast<std::int64_t>(b.last[i]) * dim;
      for (std::size_t d = 0; d < dim_; ++d) {
        grad_w[d] += dr * s.h[i * dim_ + d];
        row[d] = static_cast<float>(dr * w_[d]);
      }
      grad_w[dim_] += dr;
    }
    model_.backward_from_hidden(s.db, *s.saved, ctx_.to_here(dh), balance_weight);
  }

  // The scalar head's gradients, into the parameters' gradients (then reduced with the rest).
  void add_grads(const std::vector<double>& grad_w) const {
    Tensor gh = Tensor::host({1, model_.config().dim}, DType::f32), gb = Tensor::host({1}, DType::f32);
    for (std::size_t d = 0; d < dim_; ++d) gh.data<float>()[d] = static_cast<float>(grad_w[d]);
    gb.data<float>()[0] = static_cast<float>(grad_w[dim_]);
    kernels::axpy(ctx_, 1.0f, ctx_.to_here(gh), head_.grad);
    kernels::axpy(ctx_, 1.0f, ctx_.to_here(gb), bias_.grad);
  }

  std::size_t dim() const { return dim_; }

 private:
  Model& model_;
  const kernels::Context& ctx_;
  bool pairwise_;
  Param &head_, &bias_;
  std::size_t dim_;
  std::vector<double> w_;
};

// Held-out loss and accuracy (per pair, or per response for pointwise): micro-batches dealt round-robin
// over the data-parallel ranks, summed.
std::pair<double, double> heldout(const RewardHead& head, const std::vector<RmPair>& held, std::int64_t pairs_per_micro,
                                  std::int64_t seq, bool pairwise, parallel::Communicator& dp, const kernels::Context& ctx) {
  std::vector<double> sums{0, 0};
  const auto n_held = static_cast<std::int64_t>(held.size());
  for (std::int64_t c = 0, first = 0; first < n_held; ++c, first += pairs_per_micro) {
    if (c % dp.size() != dp.rank()) continue;
    std::vector<const RmPair*> pairs;
    for (std::int64_t k = first; k < first + pairs_per_micro; ++k) pairs.push_back(k < n_held ? &held[static_cast<std::size_t>(k)] : nullptr);
    const RmBatch b = make_batch(pairs, seq);
    const RewardHead::Scored s = head.score(b);
    const RewardLoss l = head.objective(s.r, b.valid, 0.0);
    sums[0] += l.loss_sum;
    sums[1] += static_cast<double>(l.correct);
  }
  sum_over(dp, ctx, sums);
  const double items = static_cast<double>(n_held) * (pairwise ? 1.0 : 2.0);
  return {sums[0] / items, sums[1] / items};
}

// The steps over the training pairs: pairs_per_step of the global order per step, this replica's
// micro-batches of pairs_per_micro pairs in data-parallel rank order; pairs from end_pair on (the last
// step of the epochs) are padding without a loss.
struct PairSteps {
  const RewardHead& head;
  PairOrder order;
  std::int64_t seq, pairs_per_micro, pairs_per_step, n_micro, end_pair, n_train;
  int rank;

  std::int64_t consumed(std::int64_t step) const { return std::min(step * pairs_per_step, end_pair); }
  double epoch(std::int64_t step) const { return static_cast<double>(consumed(step)) / static_cast<double>(n_train); }
  // Pairs of step `step`'s global batch that carry a loss (known to every rank without communication).
  std::int64_t valid_pairs(std::int64_t step) const {
    return std::clamp<std::int64_t>(end_pair - (step - 1) * pairs_per_step, 0, pairs_per_step);
  }

  // The forward and backward of this replica's micro-batches of step `step`, each item's loss weighted
  // `weight`: the objective's statistics into `sums` (loss, correct, margin sum (pairwise: r_c - r_r),
  // filled tokens), the expert counts into `counts`, and the head's gradients at the end.
  void passes(std::int64_t step, double weight, float balance_weight, std::vector<double>& sums, ExpertCounts& counts) {
    std::vector<double> grad_w(head.dim() + 1, 0.0);
    for (std::int64_t m = 0; m < n_micro; ++m) {
      const std::int64_t first = (step - 1) * pairs_per_step + (rank * n_micro + m) * pairs_per_micro;
      std::vector<const RmPair*> pairs;
      for (std::int64_t g = first; g < first + pairs_per_micro; ++g) {
        pairs.push_back(g < end_pair ? &order.at(g) : nullptr);
        if (pairs.back()) sums[3] += static_cast<double>(pairs.back()->first.size() + pairs.back()->second.size());
      }
      const RmBatch b = make_batch(pairs, seq);
      RewardHead::Scored s = head.score(b);
      const RewardLoss l = head.objective(s.r, b.valid, weight);
      sums[0] += l.loss_sum;
      sums[1] += static_cast<double>(l.correct);
      for (std::size_t k = 0; k < b.valid.size(); ++k)
        if (b.valid[k]) sums[2] += s.r[2 * k] - s.r[2 * k + 1];
      head.backward(b, s, l, balance_weight, grad_w);
      add_expert_counts(counts, s.fr.expert_counts, 0);
    }
    head.add_grads(grad_w);
  }
};

}  // namespace

int run_reward_model(StageEnv& env) {
  const Deck& deck = env.deck;
  parallel::Communicator& dp = *env.comms->dp;
  TrainerOptions options = TrainerOptions::from_env(env, "reward_model");
  const ModelConfig& cfg = options.model;
  const BatchPlan& plan = options.batch;
  if (plan.micro % 2 != 0)
    deck.fail("train.micro_batch", "the reward_model stage puts both sequences of a pair in one micro-batch: use an even number of rows");
  if (env.cfg.data.source != DataSource::synthetic)
    deck.fail("data.source", "the reward_model stage trains on the synthetic world's preference pairs (use synthetic)");
  const bool pairwise = env.cfg.reward_model.objective == RmObjective::pairwise;
  const auto seed = static_cast<std::uint64_t>(env.cfg.run.seed);
  const RmData data = load_pairs(deck, env.cfg, cfg, plan.seq, pairwise, seed);
  const auto n_train = static_cast<std::int64_t>(data.train.size());
  const std::int64_t pairs_per_step = plan.global / 2;
  // run.max_steps > 0 fixes the step count (reading on into later epochs); 0 runs [reward_model] epochs,
  // the last step padded with pairs that carry no loss.
  const std::int64_t epochs = env.cfg.reward_model.epochs, max_steps = env.cfg.run.max_steps;
  options.steps = max_steps > 0 ? max_steps : (epochs * n_train + pairs_per_step - 1) / pairs_per_step;
  const std::int64_t steps = options.steps;
  const std::int64_t end_pair = max_steps > 0 ? std::numeric_limits<std::int64_t>::max() : epochs * n_train;

  // Whole models and whole AdamW states on every rank. The policy / SFT checkpoint has no rm.* tensors:
  // they keep their initial values.
  options.groups = {};
  options.zero1 = false;
  options.add_params = [&cfg](ParamStore& params) { add_reward_head(params, cfg); };
  options.new_prefix = "rm.";
  Trainer trainer(env, options);
  if (trainer.resumed().loaded.empty())
    log_warn("reward_model: [checkpoint] load is empty: training a reward model from a random initialisation");
  std::int64_t tokens_seen = trainer.resumed().tokens_consumed();
  log_info("reward_model: ", describe_model(cfg), " + a scalar head; ", pairwise ? "pairwise (Bradley-Terry)" : "pointwise (safe/unsafe)",
           " on ", n_train, " training and ", data.held.size(), " held-out ", pairwise ? "helpfulness" : "harmlessness", " pairs (",
           data.truncated, " sequences truncated to data.seq_len); ", steps, " steps of ", pairs_per_step, " pairs",
           max_steps > 0 ? " (run.max_steps)" : "");

  RewardHead head(trainer.model(), env.ctx, pairwise);
  PairSteps pair_steps{head, PairOrder(data.train, seed), plan.seq, plan.micro / 2, pairs_per_step, plan.n_micro,
                       end_pair, n_train, dp.rank()};
  for (std::int64_t step = trainer.first_step(); step <= steps; ++step) {
    trainer.begin_step(step);
    head.read();
    const std::int64_t valid_pairs = pair_steps.valid_pairs(step);
    const double items = static_cast<double>(valid_pairs) * (pairwise ? 1.0 : 2.0);
    const double weight = 1.0 / std::max(1.0, items);  // the loss is the mean over the global batch
    std::vector<double> sums{0, 0, 0, 0};  // loss sum, correct, margin sum, filled tokens (PairSteps::passes)
    const auto passes = [&](ExpertCounts& counts) {
      pair_steps.passes(step, weight, trainer.balance_weight(), sums, counts);
    };
    const StepResult r = trainer.step(passes, sums);

    tokens_seen += static_cast<std::int64_t>(sums[3]);
    const double loss = sums[0] / std::max(1.0, items), accuracy = sums[1] / std::max(1.0, items);
    StepReport report{.record = {{"loss", loss}, {"accuracy", accuracy}, {"pairs", valid_pairs}, {"tokens", tokens_seen},
                                 {"epoch", pair_steps.epoch(step)}},
                      .metric = loss,
                      .tokens = tokens_seen,
                      .data_state = {{"pairs_consumed", pair_steps.consumed(step)}, {"tokens_consumed", tokens_seen},
                                     {"train_pairs", n_train}, {"epoch", pair_steps.epoch(step)}}};
    if (valid_pairs > 0) report.record["reward_margin"] = sums[2] / static_cast<double>(valid_pairs);
    if (trainer.logs(step)) {  // the held-out set is scored with every progress line
      const auto [heldout_loss, heldout_accuracy] = heldout(head, data.held, plan.micro / 2, plan.seq, pairwise, dp, env.ctx);
      report.record["heldout_loss"] = heldout_loss;
      report.record["heldout_accuracy"] = heldout_accuracy;
      report.extras = detail::concat("  accuracy ", std::round(accuracy * 1000) / 1000, "  held-out accuracy ",
                                     std::round(heldout_accuracy * 1000) / 1000, " (loss ", heldout_loss, ")");
    }
    if (trainer.end_step(r, report)) return kExitRequeue;
  }
  trainer.finish();
  return 0;
}

}  // namespace r1
