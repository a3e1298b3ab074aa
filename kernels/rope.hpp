// Rotary position embedding in DeepSeek-V3's convention: INTERLEAVED pairs (2i, 2i+1) of the rope slice
// rotated by angle pos * inv_freq[i] (the complex-pair form of DeepSeek's apply_rotary_emb), with
// optional YaRN frequency scaling. MLA applies it to the q_pe slice of every head and to the shared
// k_pe slice of the kv_a output row. Hugging Face DeepSeek-V3 checkpoints keep this interleaved layout
// (transformers' rope_interleave reorders q and k alike after rotating, which leaves q.k unchanged), so
// their weights load as they are; tests/model/hf_parity_test.cpp holds the model to transformers.
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

struct RopeConfig {
  int rope_dim = 64;                  // qk_rope_head_dim: rotated features per row (even)
  double theta = 10000.0;             // rope_theta: inv_freq[i] = theta^(-2i / rope_dim)
  double factor = 1.0;                // YaRN rope_factor (40 for DeepSeek-V3); 1 = plain RoPE
  std::int64_t original_seq_len = 4096;  // context length the base frequencies were trained for
  double beta_fast = 32.0;            // rotations per original context above which a dim keeps inv_freq
  double beta_slow = 1.0;             // rotations below which a dim is fully interpolated (inv_freq / factor)
  double mscale = 1.0;                // YaRN attention-temperature coefficient (DeepSeek-V3 config `mscale`)
  // Llama-3.1's scaling instead of YaRN (transformers' rope_type "llama3"), applied at every max_pos: with
  // wavelength w = 2 pi / inv_freq and L = original_seq_len, w < L / high_freq_factor keeps inv_freq,
  // w > L / low_freq_factor divides it by factor, and between them s = (L / w - low) / (high - low) blends
  // (1 - s) inv_freq / factor + s inv_freq. No attention-scale change.
  bool llama3 = false;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
};

struct RopeTables {
  Tensor cos;  // f32 [max_pos, rope_dim / 2]
  Tensor sin;  // f32 [max_pos, rope_dim / 2]
  // YaRN attention factor 0.1 * mscale * ln(factor) + 1 (1 without YaRN). DeepSeek-V3 multiplies the
  // softmax scale by its square.
  float attention_mscale = 1.0f;
};

// Builds the tables in ctx's memory (computed on the host in double). YaRN applies when factor > 1 and
// max_pos > original_seq_len, as in DeepSeek-V3's precompute_freqs_cis (which tests the model's
// max_seq_len): dims i below the correction dim of beta_fast keep inv_freq, dims above that of
// beta_slow use inv_freq / factor, with a linear ramp between, where the correction dim of r rotations is
// rope_dim * ln(original_seq_len / (2 pi r)) / (2 ln theta), floored (low) / ceiled (high) and clamped
// to [0, rope_dim - 1].
RopeTables rope_tables(const Context& ctx, const RopeConfig& config, std::int64_t max_pos);

// In place on x viewed as [T, H, row] (or [T, row] for one head) f32|bf16: columns
// [offset, offset + rope_dim) of every (t, h) row, position positions[t] (i32 [T], 0 <= pos < max_pos;
// checked on the CPU; on the GPU the caller validates them: out-of-range positions are undefined).
// Pair (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos).
void rope_forward(const Context& ctx, const Tensor& x, const Tensor& positions, const RopeTables& tables,
                  std::int64_t offset);
// The backward of rope_forward, in place on the gradient: rotation by -angle.
void rope_backward(const Context& ctx, const Tensor& dx, const Tensor& positions, const RopeTables& tables,
                   std::int64_t offset);

}  // namespace r1::kernels
