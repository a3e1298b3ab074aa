// DeepSeek-V3 mixture-of-experts FFN: router (sigmoid or softmax scores, bias-steered group-limited top-k),
// routed SwiGLU experts run as grouped GEMMs over the expert-sorted tokens, shared experts, the
// sequence-wise balance loss and the auxiliary-loss-free bias update.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/moe_balance.hpp"
#include "model/batch.hpp"
#include "model/config.hpp"
#include "model/mlp.hpp"
#include "model/token_dispatcher.hpp"

namespace r1 {

struct MoeStats {
  Tensor balance_loss;  // f32 [1] in the context's memory: alpha * sum_i f_i P_i (mean over sequences)
  Tensor counts;        // i32 [E]: tokens routed to each expert in this micro-batch (the expert load)
};

class MoeFfn {
 public:
  // Registers `prefix.router` [E, D], `prefix.router_bias` [E] (a buffer), `prefix.experts.gate_up`
  // [E, 2 I_e, D], `prefix.experts.down` [E, D, I_e] and, with shared experts, `prefix.shared.*`.
  // With an expert-parallel group `ep` of P > 1 ranks, this rank holds only its E / P routed experts
  // (rows [r E/P, (r+1) E/P) of the two expert tensors) and forward/backward exchange tokens over `ep`
  // (collective: every rank of the group runs the same layers in the same order). Without one (or P = 1)
  // every expert is local: the one-rank reference path.
  // Under tensor parallelism (`tp`) every rank routes all T tokens (the router is whole, its gradient
  // partial), its routed experts run only the rank's token rows (TpGroup::token_rows), the shared
  // experts split their hidden columns like a dense MLP, and forward's out and backward's dx are partial
  // sums over `tp` (the caller reduces).
  // `overlap`: the token exchanges run beside the shared experts and the router's weight gradient
  // (TokenDispatcher); the results are the same bits either way.
  MoeFfn(const ModelConfig& c, ParamStore& params, const std::string& prefix, parallel::Communicator* ep = nullptr,
         TpGroup tp = {}, bool overlap = true);

  struct Saved {
    Tensor x;                             // [T, D] the input (compute dtype)
    Tensor scores;                        // f32 [T, E] unbiased affinities (router and balance backward)
    Tensor expert_idx;                    // i32 [T, k] the selection
    Tensor gates;                         // f32 [T, k] combine weights
    std::int64_t first = 0, last = 0;     // the token rows this rank's experts run (all T without TP)
    Tensor row_of;                        // i32 [last - first, k] row of x_perm holding (token, slot)
    // The rows this rank's experts compute on: N = T k on one rank; with EP, the rows of every EP rank
    // routed to the local experts (expert-major, see TokenDispatcher).
    std::vector<std::int64_t> offsets;    // E_local + 1 host values: local expert e owns rows [off_e, off_e+1)
    Tensor x_perm;                        // [N, D] tokens in expert order (undefined when x_fp8 holds them)
    std::optional<kernels::Fp8Tensor> x_fp8;  // precision fp8: the tokens as gate_up quantises them, dispatched so
    Tensor gate_up;                       // [N, 2 I_e] the experts' fused gate/up projections
    Tensor h;                             // [N, I_e] swiglu(gate_up)
    // [train] fp8_cache_swiglu_input (DeepSeek-V3's low-precision storage): gate_up kept as 1 x 128 E4M3 tiles
    // (the down projection's scale rule) instead of gate_up and h, which the backward dequantises and recomputes.
    std::optional<kernels::Fp8Tensor> gate_up_fp8;
    Tensor y_perm;                        // [T k, D] this rank's expert outputs (back home) before the combine
    std::optional<TokenDispatcher::Route> route;  // expert parallelism only
    std::optional<DenseMlp::Saved> shared;  // absent without shared experts
  };

  // out [T, D] = sum_j gate_j expert_j(x) + shared(x), overwritten. The selection is recorded in, or with
  // replay_experts replayed from, b.experts when the layer has a record (routing replay: the gates still come
  // from this forward's scores at those experts, and backward differentiates through them). Fills `stats` with freshly allocated
  // tensors. The only host synchronisation is the expert offsets returned by moe_permute.
  // Under TP `out` is a partial sum over the group: each rank's experts run its 1/tp of the token rows
  // (split_tokens), or, for batches that may hold fewer tokens than ranks (decode; no backward), TP rank 0
  // runs every row (the others still dispatch them under EP, so the exchange stays matched) and the
  // others add only their shared-expert share.
  Saved forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
                MoeStats& stats, bool split_tokens = true) const;
  // The FFN at inference (prefill, decode): forward(split_tokens = false)'s `out` without its statistics.
  // A batch that decode_on_device() accepts runs the routed experts straight from the router's choices
  // (kernels::moe_decode_experts): nothing comes back to the host, so the step can be a CUDA graph.
  void infer(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out) const;
  // Whether infer() over `tokens` tokens stays on the device: a CUDA context, every expert local (no EP)
  // and at most one (token, slot) pair per expert (T k <= E), where reading an expert per pair costs no
  // more than the grouped GEMMs' one read per routed expert.
  bool decode_on_device(const kernels::Context& ctx, std::int64_t tokens) const {
    return ctx.is_cuda() && !dispatcher_ && tokens * top_k_ <= n_experts_;
  }
  // dx overwritten; parameter gradients (router, experts, shared) accumulated. balance_grad is
  // d(total loss)/d(balance_loss) as the caller scales it (e.g. 1 / micro-batches); 0 skips that term.
  void backward(const kernels::Context& ctx, const BatchShape& b, const Saved& saved, const Tensor& dout,
                const Tensor& dx, float balance_grad) const;
  // Auxiliary-loss-free balancing: router_bias -= gamma * sign(counts - mean(counts)), with counts i32 [E]
  // already summed over micro-batches (and data-parallel ranks).
  void update_bias(const kernels::Context& ctx, const Tensor& counts, float gamma) const;

  const kernels::RouterParams& router_params() const { return router_; }
  // The expert exchange's bytes sent to the other EP ranks over this layer's life (zero without EP).
  TokenDispatcher::Traffic traffic() const { return dispatcher_ ? dispatcher_->traffic() : TokenDispatcher::Traffic{}; }

 private:
  kernels::BalanceParams balance(const BatchShape& b) const;
  // The selection's i32 [t, k]: the layer's routing record (BatchShape::experts) when it has one.
  Tensor routing_buffer(const kernels::Context& ctx, const BatchShape& b, std::int64_t t) const;
  // The router on `logits`: its own top-k, or the replayed experts (BatchShape::replay_experts).
  void route(const kernels::Context& ctx, const BatchShape& b, const Tensor& logits, const Tensor& scores, const Tensor& idx,
             const Tensor& gates) const;
  std::int64_t first_expert() const { return dispatcher_ ? dispatcher_->first_expert() : 0; }
  std::int64_t local_experts() const { return dispatcher_ ? dispatcher_->local_experts() : n_experts_; }

  TpGroup tp_;
  std::optional<TokenDispatcher> dispatcher_;  // expert parallelism over more than one rank (first: the
                                               // expert parameters are registered by its split)
  std::int64_t dim_, n_experts_, top_k_, inter_;
  kernels::RouterParams router_;
  float alpha_;
  Param& router_w_;
  Param& router_bias_;
  Param& experts_gate_up_;
  Param& experts_down_;
  std::optional<DenseMlp> shared_;
  bool cache_swiglu_fp8_;  // ParamStore::fp8_cache_swiglu: Saved::gate_up_fp8 instead of gate_up and h
};

}  // namespace r1
