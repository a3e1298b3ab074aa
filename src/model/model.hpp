// The whole language model: embedding, transformer blocks (MLA + dense or MoE FFN), final norm, output
// head and cross-entropy, the optional MTP module, with an explicit backward and optional full
// activation recomputation per block.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "kernels/rope.hpp"
#include "model/batch.hpp"
#include "model/config.hpp"
#include "model/mla.hpp"
#include "model/mlp.hpp"
#include "model/moe.hpp"
#include "model/params.hpp"

namespace r1 {

// Every input of a forward pass, in the model's memory.
struct DeviceBatch {
  BatchShape shape;
  Tensor ids, targets, mtp_ids, mtp_targets;  // i32 [T]; mtp_* undefined without MTP
};

struct ForwardResult {
  Tensor loss_sum;     // f32[1]: sum of the per-token cross-entropies (unweighted)
  Tensor mtp_loss_sum; // f32[1] or undefined
  Tensor balance_loss; // f32[1]: sum over MoE layers of the alpha-weighted sequence-wise balance loss
  std::vector<Tensor> expert_counts;  // i32 [E] per MoE layer (MTP's last), tokens routed this micro-batch
};

class Model {
 public:
  Model(const ModelConfig& c, ParamStore& params);
  ~Model();
  const ModelConfig& config() const { return c_; }
  ParamStore& params() const { return params_; }
  bool full_recompute = false;  // keep only each block's input; recompute the block before its backward

  DeviceBatch upload(const TokenBatch& b) const;

  struct Saved;
  struct SavedDeleter {
    void operator()(Saved* s) const;
  };
  using SavedPtr = std::unique_ptr<Saved, SavedDeleter>;
  // Runs the forward pass and returns what the backward needs.
  SavedPtr forward(const DeviceBatch& batch, ForwardResult& result) const;
  // The logits of the last forward ([T, V], compute dtype) before backward overwrites them.
  static const Tensor& logits(const Saved& s);
  // Accumulates every parameter gradient of the micro-batch. `token_weight`: d(total loss)/d(token
  // loss); `balance_weight`: d(total loss)/d(balance loss).
  void backward(const DeviceBatch& batch, Saved& saved, float token_weight, float balance_weight) const;
  // The same with a weight per token (f32 [T] in the model's memory): d(total loss)/d(token's cross
  // entropy), e.g. -advantage/|o| in policy-gradient RL; the MTP head gets `mtp_token_weight` per token.
  // The tensor is consumed (overwritten).
  void backward(const DeviceBatch& batch, Saved& saved, const Tensor& token_weights, float mtp_token_weight,
                float balance_weight) const;
  // Per-token cross-entropies of the last forward (f32 [T]; 0 where the target is -1): -log p(target).
  static const Tensor& token_losses(const Saved& s);
  // Auxiliary-loss-free balancing after an optimizer step: counts summed over the step's micro-batches
  // (and data-parallel ranks), one host vector per MoE layer in forward order.
  void update_router_bias(const std::vector<std::vector<std::int64_t>>& counts, float gamma) const;
  int moe_layer_count() const;

 private:
  struct Block;
  struct BlockSaved;
  // keep = false keeps only the block input (full recompute).
  std::unique_ptr<BlockSaved> block_forward(const Block& blk, const DeviceBatch& b, const Tensor& x, const Tensor& y,
                                            ForwardResult& r, bool keep) const;
  void block_backward(const Block& blk, const DeviceBatch& b, BlockSaved& s, const Tensor& dy, const Tensor& dx,
                      float balance_weight) const;

  ModelConfig c_;
  ParamStore& params_;
  kernels::RopeTables rope_;
  std::vector<std::unique_ptr<Block>> blocks_;      // main trunk
  std::vector<std::unique_ptr<Block>> mtp_blocks_;  // one per MTP depth
  Param* embed_;
  Param* norm_;
  Param* head_;
};

}  // namespace r1
