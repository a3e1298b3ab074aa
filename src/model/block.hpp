// A transformer block (RMSNorm -> MLA or grouped-query attention ([model] arch) -> residual add,
// RMSNorm -> dense or MoE FFN -> residual add) with its training forward and backward and its pass at
// inference; the sums a forward pass reports (ForwardResult); and the parameter and linear-map helpers the
// model's own pieces share.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernels/rope.hpp"
#include "model/batch.hpp"
#include "model/config.hpp"
#include "model/gqa.hpp"
#include "model/linear.hpp"
#include "model/mla.hpp"
#include "model/mlp.hpp"
#include "model/moe.hpp"
#include "model/params.hpp"
#include "model/tensor_parallel.hpp"

namespace r1 {

struct ForwardResult {
  Tensor loss_sum;     // f32[1]: sum of the per-token cross-entropies (unweighted)
  Tensor mtp_loss_sum; // f32[1] or undefined
  Tensor balance_loss; // f32[1]: sum over MoE layers of the alpha-weighted sequence-wise balance loss
  std::vector<Tensor> expert_counts;  // i32 [E] per MoE layer (MTP's last), tokens routed this micro-batch
};

// A parameter that reads the residual stream's rows (norms, MTP projections): under sequence parallelism
// only this rank's rows, so its gradient is a partial sum over TP.
Param& residual_param(Param& p, const TpRegions& tp);
// An RMSNorm weight [dim] over the residual stream: ones, no weight decay.
Param& residual_norm(ParamStore& params, const std::string& name, std::int64_t dim, const TpRegions& tp);

class TransformerBlock {
 public:
  // What one block keeps between its forward and backward. Under full recompute only `x` is kept and the
  // rest is rebuilt just before the backward.
  struct Saved {
    Tensor x, n1, rstd1, h, n2, rstd2;
    std::optional<MlaAttention::Saved> attn;
    std::optional<GqaAttention::Saved> gqa;
    std::optional<DenseMlp::Saved> mlp;
    std::optional<MoeFfn::Saved> moe;
  };

  // Registers the block's parameters under `prefix` (layers.L, mtp.K.block): attn_norm, attn.* (MLA, or GQA
  // when c.gqa(); `rope` holds the matching tables), ffn_norm, then moe.* when `moe`, else mlp.*. Attention
  // and FFN split over tp.group; routed experts over `ep`.
  TransformerBlock(const ModelConfig& c, ParamStore& params, const std::string& prefix, bool moe,
                   const kernels::RopeTables& rope, const TpRegions& tp, parallel::Communicator* ep,
                   bool overlap_expert_comm);
  // y = x + attn(norm(x)) then y += ffn(norm(y)) over this rank's residual rows x, y [R, D]
  // (R = tp.residual_rows(T)); an MoE FFN adds its balance loss and expert counts to r. keep = false keeps
  // only the input (full recompute).
  std::unique_ptr<Saved> forward(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& y,
                                 ForwardResult& r, bool keep) const;
  // Accumulates the block's parameter gradients from dy and overwrites dx (both [R, D]); rebuilds what a
  // forward with keep = false left out first (its statistics discarded).
  void backward(const kernels::Context& ctx, const BatchShape& b, Saved& s, const Tensor& dy, const Tensor& dx,
                float balance_weight) const;
  // The block at inference over all T rows x, y [T, D] (y is overwritten): `attention` maps the normalised
  // input to the attention output (prefill or decode); the FFN runs its inference pass. The same ops in
  // the same order as forward(), so prefill and decode reproduce the training forward.
  void infer(const kernels::Context& ctx, const BatchShape& b, const Tensor& x, const Tensor& y,
             const std::function<void(const Tensor& n1, const Tensor& out)>& attention) const;

  std::span<Param* const> params() const { return params_; }  // every parameter the block registered
  const MlaAttention* mla() const { return attn_.get(); }  // null in a grouped-query-attention block
  const GqaAttention* gqa() const { return gqa_.get(); }   // null in an MLA block
  MoeFfn* moe() const { return moe_.get(); }  // null for a dense FFN

 private:
  std::int64_t dim_;
  float eps_;
  DType dtype_;  // the compute dtype of activations
  TpRegions tp_;
  Param* attn_norm_ = nullptr;
  Param* ffn_norm_ = nullptr;
  std::unique_ptr<MlaAttention> attn_;  // arch mla
  std::unique_ptr<GqaAttention> gqa_;   // the grouped-query-attention families
  std::unique_ptr<DenseMlp> mlp_;  // dense FFN layers
  std::unique_ptr<MoeFfn> moe_;    // MoE layers
  std::vector<Param*> params_;
};

}  // namespace r1
