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

namespace r1 {

struct MoeStats {
  Tensor balance_loss;  // f32 [1] in the context's memory: alpha * sum_i f_i P_i (mean over sequences)
  Tensor counts;        // i32 [E]: tokens routed to each expert in this micro-batch (the expert load)
};

class MoeFfn {
 public:
  // Registers `prefix.router` [E, D], `prefix.router_bias` [E] (a buffer), `prefix.experts.gate_up`
  // [E, 2 I_e, D], `prefix.experts.down` [E, D, I_e] and, with shared experts, `prefix.shared.*`.
  MoeFfn(const ModelConfig& c, ParamStore& params, const std::string& prefix);

  struct Saved {
    Tensor x;                             // [T, D] the input (compute dtype)
    Tensor scores;                        // f32 [T, E] unbiased affinities (router and balance backward)
    Tensor expert_idx;                    // i32 [T, k] the selection
    Tensor gates;                         // f32 [T, k] combine weights
    Tensor row_of;                        // i32 [T, k] row of x_perm holding (token, slot)
    std::vector<std::int64_t> offsets;    // E + 1 host values: expert e owns rows [off_e, off_e+1)
    Tensor x_perm;                        // [T k, D] tokens in expert order
    Tensor gate_up;                       // [T k, 2 I_e] the experts' fused gate/up projections
    Tensor h;                             // [T k, I_e] swiglu(gate_up)
    Tensor y_perm;                        // [T k, D] expert outputs before the gate-weighted combine
    std::optional<DenseMlp::Saved> shared;  // absent without shared experts
  };

  // out [T, D] = sum_j gate_j expert_j(x) + shared(x), overwritten. Fills `stats` with freshly allocated
  // tensors. The only host synchronisation is the expert offsets returned by moe_permute.
  Saved forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& out,
                MoeStats& stats) const;
  // dx overwritten; parameter gradients (router, experts, shared) accumulated. balance_grad is
  // d(total loss)/d(balance_loss) as the caller scales it (e.g. 1 / micro-batches); 0 skips that term.
  void backward(const kernels::Context& ctx, const BatchShape& b, const Saved& saved, const Tensor& dout,
                const Tensor& dx, float balance_grad) const;
  // Auxiliary-loss-free balancing: router_bias -= gamma * sign(counts - mean(counts)), with counts i32 [E]
  // already summed over micro-batches (and data-parallel ranks).
  void update_bias(const kernels::Context& ctx, const Tensor& counts, float gamma) const;

  const kernels::RouterParams& router_params() const { return router_; }

 private:
  kernels::BalanceParams balance(const BatchShape& b) const;

  std::int64_t dim_, n_experts_, top_k_, inter_;
  kernels::RouterParams router_;
  float alpha_;
  Param& router_w_;
  Param& router_bias_;
  Param& experts_gate_up_;
  Param& experts_down_;
  std::optional<DenseMlp> shared_;
};

}  // namespace r1
