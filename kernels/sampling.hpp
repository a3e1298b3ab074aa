// Token sampling from f32 logit rows: temperature, top-k, then the top-p nucleus of the renormalised
// top-k, with each row's draw an inverse-CDF lookup at a given uniform. One definition, two backends:
//   candidates are ordered by (logit descending, id ascending); top-k keeps the first k; the nucleus is the
//   shortest prefix of those whose mass reaches top_p x their total; the token is the first id, in id
//   order, at which the cumulative mass of the kept set exceeds u x its total (the argmax if rounding
//   leaves none).
// The CPU reference sorts and sums masses in f64. The CUDA kernel finds the same sets by radix selection on
// the logits' order keys, without sorting, and sums masses in 64-bit fixed point (each weight rounded to
// 2^-(64 - bit length of V), so sums are exact and the same bits run to run); both pick the same token unless
// a cumulative mass lands within ~1e-12 of the total from a boundary. Log-probs and entropies are f64 sums
// on both.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/context.hpp"

namespace r1::kernels {

struct SampleOptions {
  float temperature = 1.0f;     // 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;           // (0, 1]; 1 = off
  std::int64_t top_k = 0;       // 0 = off
  std::int64_t vocab_limit = 0; // draw only ids below this (log-probs over them too); 0 = the whole row
};

struct SampledToken {
  std::int32_t token = 0;
  float logprob = 0.0f;  // log softmax(logits / T)[token] over the drawable ids (T = 1 when greedy)
  float entropy = 0.0f;  // entropy (nats) of softmax(logits / T) over the drawable ids
};

// Throws a user error naming the field that is out of range.
void validate(const SampleOptions& o);

// logits [B, V] f32, uniforms [B] f64 in [0, 1); writes tokens [B] i32, logprobs [B] f32, entropies [B] f32.
void sample_rows(const Context& ctx, const Tensor& logits, const Tensor& uniforms, const SampleOptions& o,
                 const Tensor& tokens, const Tensor& logprobs, const Tensor& entropies);

}  // namespace r1::kernels
