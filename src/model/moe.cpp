#include "model/moe.hpp"

#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/moe_decode.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/swiglu.hpp"
#include "model/linear.hpp"

#include <tuple>

namespace r1 {

namespace {
kernels::RouterParams router_params_of(const ModelConfig& c) {
  return {.score_func = c.score_func == RouterScore::softmax ? kernels::ScoreFunc::softmax : kernels::ScoreFunc::sigmoid,
          .top_k = static_cast<int>(c.n_activated_experts),
          .n_groups = static_cast<int>(c.n_expert_groups),
          .topk_groups = static_cast<int>(c.n_limited_groups),
          .route_scale = static_cast<float>(c.route_scale),
          .normalize = c.normalize_gates};
}
std::optional<DenseMlp> shared_experts(const ModelConfig& c, ParamStore& params, const std::string& prefix, TpGroup tp) {
  if (c.n_shared_experts == 0) return std::nullopt;
  return DenseMlp(params, prefix + ".shared", c.dim, c.moe_inter_dim * c.n_shared_experts, tp);
}
Param& partial(Param& p) {
  p.tp = TpRole::partial;
  return p;
}

std::optional<TokenDispatcher> dispatcher_for(const ModelConfig& c, parallel::Communicator* ep, bool overlap) {
  if (ep == nullptr || ep->size() == 1) return std::nullopt;
  return std::optional<TokenDispatcher>(std::in_place, *ep, c.n_routed_experts, overlap);
}
}  // namespace

MoeFfn::MoeFfn(const ModelConfig& c, ParamStore& params, const std::string& prefix, parallel::Communicator* ep,
               TpGroup tp, bool overlap)
    : tp_(tp),
      dispatcher_(dispatcher_for(c, ep, overlap)),
      dim_(c.dim),
      n_experts_(c.n_routed_experts),
      top_k_(c.n_activated_experts),
      inter_(c.moe_inter_dim),
      router_(router_params_of(c)),
      alpha_(static_cast<float>(c.seq_aux_alpha)),
      router_w_(partial(params.add(prefix + ".router", {c.n_routed_experts, c.dim}, Init::normal, /*decay=*/false))),
      router_bias_(params.add(prefix + ".router_bias", {c.n_routed_experts}, Init::zeros, /*decay=*/false,
                              /*trainable=*/false)),
      experts_gate_up_(use_fp8(params, params.add_experts(prefix + ".experts.gate_up",
                                                         {c.n_routed_experts, 2 * c.moe_inter_dim, c.dim},
                                                         first_expert(), local_experts(), Init::normal))),
      experts_down_(use_fp8(params, params.add_experts(prefix + ".experts.down", {c.n_routed_experts, c.dim, c.moe_inter_dim},
                                                      first_expert(), local_experts(), Init::normal))),
      shared_(shared_experts(c, params, prefix, tp)),
      cache_swiglu_fp8_(params.fp8_cache_swiglu()) {}

kernels::BalanceParams MoeFfn::balance(const BatchShape& b) const {
  return {.seq_len = b.seq, .alpha = alpha_, .score_func = router_.score_func};
}

Tensor MoeFfn::routing_buffer(const kernels::Context& ctx, const BatchShape& b, std::int64_t t) const {
  if (!b.experts.defined()) return ctx.empty({t, top_k_}, DType::i32);
  R1_CHECK(b.experts.shape() == Shape({t, top_k_}) && b.experts.dtype() == DType::i32, "moe ", router_w_.name,
           ": routing record ", b.experts.str(), " for ", t, " tokens of ", top_k_, " experts");
  return b.experts;
}

void MoeFfn::route(const kernels::Context& ctx, const BatchShape& b, const Tensor& logits, const Tensor& scores,
                   const Tensor& idx, const Tensor& gates) const {
  if (b.replay_experts)
    kernels::moe_router_replay(ctx, logits, router_bias_.master, router_, scores, idx, gates);
  else
    kernels::moe_router_forward(ctx, logits, router_bias_.master, router_, scores, idx, gates);
}

MoeFfn::Saved MoeFfn::forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
                              MoeStats& stats, bool split_tokens) const {
  R1_REQUIRE(x.rank() == 2 && x.dim(0) == b.tokens() && x.dim(1) == dim_ && out.shape() == x.shape(), "moe ",
             router_w_.name, ": x and out must be [B S = ", b.tokens(), ", ", dim_, "], got ", x.str(), " and ",
             out.str());
  const std::int64_t t = x.dim(0);
  const DType dt = x.dtype();
  R1_REQUIRE(!split_tokens || t >= tp_.size(), "moe ", router_w_.name, ": ", t, " tokens cannot be split over ", tp_.size(),
             " tensor-parallel ranks");

  // Router in f32 (bf16 operands, f32 accumulation and output in bf16 runs); the bias only steers selection.
  const Tensor logits = ctx.empty({t, n_experts_}, DType::f32);
  kernels::gemm(ctx, x, router_w_.compute, logits, {.trans_b = true});
  Saved s;
  s.x = x;
  s.scores = ctx.empty({t, n_experts_}, DType::f32);
  s.expert_idx = routing_buffer(ctx, b, t);
  s.gates = ctx.empty({t, top_k_}, DType::f32);
  route(ctx, b, logits, s.scores, s.expert_idx, s.gates);

  stats.balance_loss = ctx.empty({1}, DType::f32);
  stats.counts = ctx.empty({n_experts_}, DType::i32);
  kernels::moe_balance_forward(ctx, s.scores, s.expert_idx, balance(b), stats.balance_loss, stats.counts);

  // Routed experts over the expert-sorted tokens (under TP, of this rank's token rows).
  if (split_tokens) std::tie(s.first, s.last) = tp_.token_rows(t);
  else s.first = 0, s.last = t;
  const std::int64_t mine = s.last - s.first;
  // Without splitting, TP rank 0 alone adds the routed experts to the partial sum; without EP the other
  // ranks need not run them at all.
  const bool adds_routed = split_tokens || tp_.rank() == 0;
  if (!adds_routed && !dispatcher_) {
    kernels::fill(ctx, out, 0.0f);
    if (shared_) s.shared = shared_->forward(ctx, x, out, /*accumulate=*/true);
    return s;
  }
  s.row_of = ctx.empty({mine, top_k_}, DType::i32);
  s.x_perm = ctx.empty({mine * top_k_, dim_}, dt);
  const Tensor offsets_dev = ctx.empty({n_experts_ + 1}, DType::i32);
  s.offsets = kernels::moe_permute(ctx, x.slice(s.first, s.last), s.expert_idx.slice(s.first, s.last), s.x_perm, s.row_of,
                                   offsets_dev);
  // The shared experts up to their down projection run while the rows are dispatched; the down
  // projection adds to `out` after the routed experts, as ever.
  const auto shared_hidden = [&] {
    if (shared_) s.shared = shared_->hidden(ctx, x);
  };
  if (experts_gate_up_.fp8) {  // DeepSeek-V3: quantised once, before the dispatch (1 x 128 tiles are per row)
    s.x_fp8 = linear_quantize_input(ctx, s.x_perm, experts_gate_up_);
    s.x_perm = Tensor();
  }
  if (dispatcher_) {  // the rows go to the ranks holding their experts
    s.route = dispatcher_->route(ctx, s.offsets);
    if (s.x_fp8) s.x_fp8 = dispatcher_->dispatch(ctx, *s.route, *s.x_fp8, shared_hidden);
    else s.x_perm = dispatcher_->dispatch(ctx, *s.route, s.x_perm, shared_hidden);
    s.offsets = s.route->local_offsets;
  } else {
    shared_hidden();
  }
  const std::int64_t n = s.offsets.back();
  s.gate_up = ctx.empty({n, 2 * inter_}, dt);
  if (s.x_fp8) grouped_linear_forward(ctx, *s.x_fp8, experts_gate_up_, s.gate_up, s.offsets);
  else grouped_linear_forward(ctx, s.x_perm, experts_gate_up_, s.gate_up, s.offsets);
  s.h = ctx.empty({n, inter_}, dt);
  s.y_perm = ctx.empty({n, dim_}, dt);
  if (experts_down_.fp8) {  // SwiGLU quantises its output for the FP8 down projection in the same pass
    const kernels::Fp8Tensor hq = linear_input_tiles(ctx, n, inter_, experts_down_);
    kernels::swiglu_forward_fp8(ctx, s.gate_up, s.h, hq);
    grouped_linear_forward(ctx, hq, experts_down_, s.y_perm, s.offsets);
    if (cache_swiglu_fp8_) {  // DeepSeek-V3 caches the SwiGLU input in FP8, recomputes its output in the backward
      s.gate_up_fp8 = linear_quantize_input(ctx, s.gate_up, experts_down_);
      s.gate_up = Tensor();
      s.h = Tensor();
    }
  } else {
    kernels::swiglu_forward(ctx, s.gate_up, s.h);
    grouped_linear_forward(ctx, s.h, experts_down_, s.y_perm, s.offsets);
  }
  if (dispatcher_) s.y_perm = dispatcher_->combine(ctx, *s.route, s.y_perm);
  if (mine < t || !adds_routed) kernels::fill(ctx, out, 0.0f);  // the other ranks' token rows: their share
  if (adds_routed) kernels::moe_unpermute(ctx, s.y_perm, s.row_of, s.gates.slice(s.first, s.last), out.slice(s.first, s.last));

  if (shared_) shared_->project(ctx, *s.shared, out, /*accumulate=*/true);
  return s;
}

void MoeFfn::infer(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out) const {
  if (!decode_on_device(ctx, x.dim(0))) {
    MoeStats discarded;
    forward(ctx, b, x, out, discarded, /*split_tokens=*/false);  // a decode batch may hold fewer tokens than TP ranks
    return;
  }
  const std::int64_t t = x.dim(0);
  const Tensor logits = ctx.empty({t, n_experts_}, DType::f32), scores = ctx.empty({t, n_experts_}, DType::f32);
  const Tensor idx = routing_buffer(ctx, b, t), gates = ctx.empty({t, top_k_}, DType::f32);
  kernels::gemm(ctx, x, router_w_.compute, logits, {.trans_b = true});
  route(ctx, b, logits, scores, idx, gates);
  if (tp_.rank() == 0)  // as forward(): TP rank 0 adds the routed experts to the partial sum
    kernels::moe_decode_experts(ctx, x, idx, gates, experts_gate_up_.compute, experts_down_.compute,
                                ctx.empty({t * top_k_, inter_}, x.dtype()), out);
  else
    kernels::fill(ctx, out, 0.0f);
  if (shared_) shared_->forward(ctx, x, out, /*accumulate=*/true);
}

void MoeFfn::backward(const kernels::Context& ctx, const BatchShape& b, const Saved& s, const Tensor& dout,
                      const Tensor& dx, float balance_grad) const {
  R1_REQUIRE(dout.shape() == s.x.shape() && dx.shape() == s.x.shape() && dout.dtype() == s.x.dtype(), "moe ",
             router_w_.name, ": dout and dx must be shaped like x ", s.x.str(), " (dout in its dtype), got ",
             dout.str(), " and ", dx.str());
  const std::int64_t t = s.x.dim(0), mine = s.last - s.first;
  const DType dt = dout.dtype();

  // Combine: gradients of the expert outputs and of the gates (then, with EP, to the experts' ranks).
  // Under TP only this rank's token rows: the other rows' gate gradients are other ranks' shares.
  Tensor dy_perm = ctx.empty({mine * top_k_, dim_}, dt);
  const Tensor dgates = mine < t ? ctx.zeros({t, top_k_}, DType::f32) : ctx.empty({t, top_k_}, DType::f32);
  kernels::moe_unpermute_backward(ctx, dout.slice(s.first, s.last), s.y_perm, s.row_of, s.gates.slice(s.first, s.last),
                                  dy_perm, dgates.slice(s.first, s.last));
  // The shared experts' weight gradients run while the output gradients are dispatched; their input
  // gradient is added to dx last, as ever.
  Tensor dshared;
  const auto shared_weights = [&] {
    if (shared_) dshared = shared_->backward_weights(ctx, *s.shared, dout);
  };
  // DeepSeek-V3 sends the output gradients to the experts in FP8 (1 x 128 tiles per row, quantised once before
  // the exchange), as it does the tokens; the FP8 down projection takes them as they come. Its weight gradient
  // quantises them again along the tokens, which power-of-two scales ([train] fp8_scale = pow2, as V3 scales
  // these gradients) do without a second rounding; with FP32 scales that rounding doubled the 20-step loss
  // gap to fp32 (tests/parallel/fp8_equivalence_test.cpp), so there they travel in the compute dtype.
  std::optional<kernels::Fp8Tensor> dy_fp8;
  if (experts_down_.fp8 && experts_down_.fp8->pow2_scales) dy_fp8 = linear_quantize_input(ctx, dy_perm, experts_down_);
  if (dispatcher_ && dy_fp8) dy_fp8 = dispatcher_->dispatch(ctx, *s.route, *dy_fp8, shared_weights);
  else if (dispatcher_) dy_perm = dispatcher_->dispatch(ctx, *s.route, dy_perm, shared_weights);
  else shared_weights();
  const std::int64_t n = s.offsets.back();
  // The SwiGLU input and output: as saved, or (fp8) dequantised from the cached tiles and recomputed.
  Tensor gate_up = s.gate_up, h = s.h;
  if (s.gate_up_fp8) {
    gate_up = ctx.empty({n, 2 * inter_}, dt);
    kernels::dequantize_fp8(ctx, *s.gate_up_fp8, gate_up);
    h = ctx.empty({n, inter_}, dt);
    kernels::swiglu_forward(ctx, gate_up, h);
  }

  // Experts: down, swiglu, gate_up; weight gradients accumulated per expert.
  const Tensor dh = ctx.empty({n, inter_}, dt);
  if (dy_fp8) {
    grouped_linear_dgrad(ctx, *dy_fp8, experts_down_, dh, s.offsets);
    grouped_linear_wgrad(ctx, *dy_fp8, h, experts_down_, s.offsets);
  } else {
    grouped_linear_dgrad(ctx, dy_perm, experts_down_, dh, s.offsets);
    grouped_linear_wgrad(ctx, dy_perm, h, experts_down_, s.offsets);
  }
  const Tensor dgate_up = ctx.empty({n, 2 * inter_}, dt);
  kernels::swiglu_backward(ctx, dh, gate_up, dgate_up);
  if (s.x_fp8) grouped_linear_wgrad(ctx, dgate_up, *s.x_fp8, experts_gate_up_, s.offsets);
  else grouped_linear_wgrad(ctx, dgate_up, s.x_perm, experts_gate_up_, s.offsets);
  // The input gradient of the received rows: in dy_perm's buffer once it is spent (in BF16, it holds them).
  const Tensor dx_perm = dy_fp8 ? ctx.empty({n, dim_}, dt) : dy_perm;
  grouped_linear_dgrad(ctx, dgate_up, experts_gate_up_, dx_perm, s.offsets);

  // Router: gates and (scaled) balance loss to the logits, then to the router weight (while the input
  // gradients travel back) and to the input.
  const Tensor dlogits = ctx.empty({t, n_experts_}, DType::f32);
  Tensor dlogits_c = dlogits;  // GEMM operands share a dtype: the compute dtype of x and the router weight
  const auto router_weights = [&] {
    kernels::moe_router_backward(ctx, dgates, s.scores, s.expert_idx, s.gates, router_, dlogits);
    if (balance_grad != 0.0f && alpha_ != 0.0f && tp_.rank() == 0)  // every TP rank computes the same loss: one adds it
      kernels::moe_balance_backward(ctx, balance_grad, s.scores, s.expert_idx, balance(b), dlogits);
    if (dt != DType::f32) {
      dlogits_c = ctx.empty({t, n_experts_}, dt);
      kernels::cast(ctx, dlogits, dlogits_c);
    }
    kernels::gemm(ctx, dlogits_c, s.x, router_w_.grad, {.trans_a = true, .beta = 1.0f});
  };
  Tensor dx_rows = dx_perm;
  if (dispatcher_) dx_rows = dispatcher_->combine(ctx, *s.route, dx_perm, router_weights);
  else router_weights();
  if (mine < t) kernels::fill(ctx, dx, 0.0f);
  kernels::moe_permute_backward(ctx, dx_rows, s.row_of, dx.slice(s.first, s.last));
  kernels::gemm(ctx, dlogits_c, router_w_.compute, dx, {.beta = 1.0f});

  if (shared_) shared_->backward_input(ctx, *s.shared, dshared, dx, /*accumulate=*/true);
}

void MoeFfn::update_bias(const kernels::Context& ctx, const Tensor& counts, float gamma) const {
  kernels::moe_bias_update(ctx, counts, gamma, router_bias_.master);
  if (router_bias_.compute.dtype() != DType::f32) kernels::cast(ctx, router_bias_.master, router_bias_.compute);
}

}  // namespace r1
