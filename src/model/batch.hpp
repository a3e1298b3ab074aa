// The tokens of one micro-batch: their layout as every layer sees it (BatchShape), on the host (TokenBatch)
// and in the model's memory (DeviceBatch, Model::upload).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"

namespace r1 {

// B sequences of S tokens each, flattened to T = B x S rows ([T, D] activations, row t = b * S + s).
struct BatchShape {
  std::int64_t batch = 1;
  std::int64_t seq = 1;
  Tensor positions;    // i32 [T] in the context's memory: RoPE position of each token
  Tensor segment_ids;  // i32 [B, S] or undefined: packed samples attend only within their segment
  // One MoE layer's routing (Model sets it per layer from DeviceBatch::experts): i32 [T, k] where the router
  // writes each token's experts, or, with replay_experts, reads the experts to replay where a row holds them
  // (kernels::moe_router_replay). Undefined: the router's own choices, kept nowhere.
  Tensor experts;
  bool replay_experts = false;
  std::int64_t tokens() const { return batch * seq; }
};

// One micro-batch of tokens on the host: B sequences of S tokens. targets[t] is the token to predict at
// t (-1: no loss there); Model::upload derives MTP's inputs and targets from them.
struct TokenBatch {
  std::int64_t batch = 1, seq = 1;
  std::vector<std::int32_t> ids, targets;
  std::vector<std::int32_t> segment_ids;  // empty: one sample per row (no packing)
  // Routing of the trunk's MoE layers, [L_moe, T, k] (layer l - n_dense_layers): each token's experts, or -1
  // rows; with replay_experts the forwards route each token with ids to them (routing replay), else they
  // are overwritten with the router's choices (read back from DeviceBatch::experts). Empty: neither.
  std::vector<std::int32_t> experts;
  bool replay_experts = false;
  std::int64_t counted() const {          // targets that carry a loss
    std::int64_t n = 0;
    for (std::int32_t t : targets) n += t >= 0;
    return n;
  }
};

// Every input of a forward pass, in the model's memory.
struct DeviceBatch {
  BatchShape shape;
  // i32 [T]. MTP (mtp_*; undefined without it): at t the input is token t + 1 and the target target t + 1
  // of the same sample (input 0, target -1 at a sample's last token).
  Tensor ids, targets, mtp_ids, mtp_targets;
  // The same as rows and columns of this rank's vocabulary shard (shard_ids, shard_targets); without
  // tensor parallelism the tensors above themselves.
  Tensor shard_ids, shard_targets, shard_mtp_ids, shard_mtp_targets;
  Tensor experts;  // i32 [L_moe, T, k] from TokenBatch::experts (undefined when it is empty)
  bool replay_experts = false;
};

// i32 `shape` in ctx's memory holding v (host-built indices: positions, ids, rows, slots).
Tensor device_ints(const kernels::Context& ctx, const std::vector<std::int32_t>& v, const Shape& shape);

}  // namespace r1
