// The token layout of one micro-batch as every layer sees it.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace r1 {

// B sequences of S tokens each, flattened to T = B x S rows ([T, D] activations, row t = b * S + s).
struct BatchShape {
  std::int64_t batch = 1;
  std::int64_t seq = 1;
  Tensor positions;    // i32 [T] in the context's memory: RoPE position of each token
  Tensor segment_ids;  // i32 [B, S] or undefined: packed samples attend only within their segment
  std::int64_t tokens() const { return batch * seq; }
};

// One micro-batch of tokens on the host: B sequences of S tokens. targets[t] is the token to predict at
// t (-1: no loss there); for MTP, mtp_ids/mtp_targets are the next token's input and the token after.
struct TokenBatch {
  std::int64_t batch = 1, seq = 1;
  std::vector<std::int32_t> ids, targets;
  std::vector<std::int32_t> segment_ids;  // empty: one sample per row (no packing)
  std::int64_t counted() const {          // targets that carry a loss
    std::int64_t n = 0;
    for (std::int32_t t : targets) n += t >= 0;
    return n;
  }
};

}  // namespace r1
