#include "rl/reward_scorer.hpp"

#include <algorithm>

#include "checkpoint/train_state.hpp"
#include "core/error.hpp"
#include "deck/ini.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/embedding.hpp"

namespace r1 {

namespace {
std::filesystem::path resolve(const Deck& deck, std::string_view key, const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::exists(p / "index.h5")) return p;
  const auto l = ckpt::latest(p);
  if (!l) deck.fail(key, "is neither a checkpoint (no index.h5) nor a directory with a `latest` checkpoint");
  return *l;
}
}  // namespace

std::vector<float> hidden_rows(const kernels::Context& ctx, const Model& model, const Model::Saved& saved,
                               const std::vector<std::int32_t>& positions) {
  const auto rows = static_cast<std::int64_t>(positions.size());
  const std::int64_t dim = model.config().dim;
  Tensor idx = Tensor::host({rows}, DType::i32);
  std::copy(positions.begin(), positions.end(), idx.data<std::int32_t>());
  const Tensor gathered = ctx.empty({rows, dim}, model.params().compute_dtype()), f = ctx.empty({rows, dim}, DType::f32);
  kernels::embedding_forward(ctx, Model::final_hidden(saved), ctx.to_here(idx), gathered);
  kernels::cast(ctx, gathered, f);
  Tensor h = Tensor::host({rows, dim}, DType::f32);
  copy(h, f);
  return {h.data<float>(), h.data<float>() + h.numel()};
}

double linear_reward(const std::vector<double>& head, const float* h) {
  const std::size_t dim = head.size() - 1;
  double r = head[dim];
  for (std::size_t d = 0; d < dim; ++d) r += head[d] * h[d];
  return r;
}

RewardScorer::RewardScorer(const Deck& deck, std::string_view key, const std::string& path, const ModelConfig& cfg,
                           const kernels::Context& ctx, DType compute_dtype)
    : cfg_(cfg), ctx_(ctx), params_(ctx, compute_dtype), model_(cfg, params_), checkpoint_(resolve(deck, key, path)) {
  const ckpt::Meta meta = ckpt::read_meta(checkpoint_);
  if (meta.stage != "reward_model")
    deck.fail(key, detail::concat(checkpoint_.string(), " was written by the ", meta.stage.empty() ? "(unknown)" : meta.stage,
                                  " stage, not by reward_model"));
  objective_ = "pairwise";
  for (const IniEntry& e : read_ini(meta.deck, checkpoint_.string() + "/index.h5:meta/deck").entries)
    if (e.section == "reward_model" && e.key == "objective") objective_ = e.value;
  params_.add("rm.head", {1, cfg.dim}, Init::normal);
  params_.add("rm.bias", {1}, Init::zeros, /*decay=*/false);
  params_.initialize(0, cfg.init_std);
  ckpt::load_train_state(checkpoint_, ckpt::LoadMode::weights, params_, nullptr);
  Tensor h = Tensor::host({1, cfg.dim}, DType::f32), b = Tensor::host({1}, DType::f32);
  copy(h, params_.get("rm.head").master);
  copy(b, params_.get("rm.bias").master);
  head_.assign(h.data<float>(), h.data<float>() + cfg.dim);
  head_.push_back(b.data<float>()[0]);
}

std::vector<double> RewardScorer::score(const std::vector<std::vector<std::int32_t>>& seqs, std::int64_t micro,
                                        std::int32_t pad) const {
  std::vector<double> out;
  const auto D = static_cast<std::size_t>(cfg_.dim);
  for (std::size_t first = 0; first < seqs.size(); first += static_cast<std::size_t>(micro)) {
    const std::size_t last_seq = std::min(seqs.size(), first + static_cast<std::size_t>(micro));
    TokenBatch tb;
    tb.batch = static_cast<std::int64_t>(last_seq - first);
    tb.seq = 1;
    for (std::size_t i = first; i < last_seq; ++i) {
      R1_CHECK(!seqs[i].empty(), "reward model: an empty sequence");
      tb.seq = std::max<std::int64_t>(tb.seq, static_cast<std::int64_t>(seqs[i].size()));
    }
    R1_REQUIRE(tb.seq <= cfg_.max_seq_len, "reward model: a sequence of ", tb.seq, " tokens exceeds model.max_seq_len = ",
               cfg_.max_seq_len);
    tb.ids.assign(static_cast<std::size_t>(tb.batch * tb.seq), pad);
    tb.targets.assign(tb.ids.size(), -1);
    std::vector<std::int32_t> last;
    for (std::size_t i = first; i < last_seq; ++i) {
      const auto row = static_cast<std::int64_t>(i - first) * tb.seq;
      std::copy(seqs[i].begin(), seqs[i].end(), tb.ids.begin() + row);
      last.push_back(static_cast<std::int32_t>(row + static_cast<std::int64_t>(seqs[i].size()) - 1));
    }
    ForwardResult fr;
    const auto saved = model_.forward(model_.upload(tb), fr);
    const std::vector<float> h = hidden_rows(ctx_, model_, *saved, last);
    for (std::size_t i = 0; i < last.size(); ++i) out.push_back(linear_reward(head_, h.data() + i * D));
  }
  return out;
}

}  // namespace r1
