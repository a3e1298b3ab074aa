// DeepSeek-V3's multi-token prediction (MTP) module (docs/model.md): at each token t it combines the trunk's
// output with the embedding of token t + 1 (each RMS-normalised, then projected together by eh_proj, kept as
// its two halves proj_e and proj_h), runs one transformer block, and predicts target t + 1 through its own
// norm and the model's shared output head. Its loss enters the total weighted mtp_lambda / mtp_depth.
#pragma once
#include <memory>

#include "model/batch.hpp"
#include "model/block.hpp"
#include "model/head.hpp"

namespace r1 {

class MtpModule {
 public:
  // What the backward reads, all over this rank's residual rows [R, D] (R = tp.residual_rows(T)).
  struct Saved {
    Tensor trunk;                // the trunk output it read
    Tensor emb, en, en_rstd;     // embedding of the next token and its norm
    Tensor hn, hn_rstd;          // the trunk output's norm
    Tensor x, y;                 // the block's input (the projection) and output
    std::unique_ptr<TransformerBlock::Saved> block;
    LmHead::Saved head;
  };

  // Registers mtp.K.enorm, .hnorm, .proj_e, .proj_h, .norm and the block mtp.K.block.* (K = `index`, 0 for
  // the first depth); the embedding and head are the model's, shared (the head is the embedding when tied).
  MtpModule(const ModelConfig& c, ParamStore& params, std::int64_t index, const kernels::RopeTables& rope,
            const TpRegions& tp, parallel::Communicator* ep, bool overlap_expert_comm, const Param& embed,
            const Param& head);
  // The module's forward from the trunk output [R, D] and b's MTP ids and targets; r.mtp_loss_sum is the sum
  // of its per-token losses, and its block's MoE statistics are added to r.
  Saved forward(const kernels::Context& ctx, const DeviceBatch& b, const Tensor& trunk, ForwardResult& r,
                bool keep) const;
  // Accumulates the gradients of its parameters, of the shared head and of the embedding from its loss, each
  // token weighted token_weight x mtp_lambda / mtp_depth (written into `dloss`, f32 [T], as scratch), and
  // adds d(loss)/d(trunk) to dtrunk [R, D].
  void backward(const kernels::Context& ctx, const DeviceBatch& b, Saved& s, const Tensor& dloss, float token_weight,
                float balance_weight, const Tensor& dtrunk) const;
  const TransformerBlock& block() const { return *block_; }

 private:
  std::int64_t dim_;
  float eps_;
  DType dtype_;
  double loss_scale_;  // mtp_lambda / mtp_depth
  TpRegions tp_;
  const Param& embed_;
  Param* enorm_ = nullptr;
  Param* hnorm_ = nullptr;
  Param* proj_e_ = nullptr;
  Param* proj_h_ = nullptr;
  std::unique_ptr<TransformerBlock> block_;
  std::unique_ptr<LmHead> head_;
};

}  // namespace r1
