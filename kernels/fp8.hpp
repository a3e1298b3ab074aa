// FP8 (E4M3) block-scaled tensors as DeepSeek-V3 stores and trains them: a 2-D tensor split into
// (block_rows x block_cols) tiles, each with one f32 `scale_inv` such that x ~= fp8 * scale_inv
// (128 x 128 for weights, 1 x 128 for activations; the last tiles of a dimension may be partial).
#pragma once
#include <span>
#include <vector>

#include "kernels/context.hpp"

namespace r1::kernels {

constexpr int kFp8Tile = 128;  // V3's tile edge: 1 x 128 activation tiles, 128 x 128 weight blocks

struct Fp8Tensor {
  Tensor data;       // f8e4m3 [rows, cols]
  Tensor scale_inv;  // f32 [ceil(rows / block_rows), ceil(cols / block_cols)]
  int block_rows = 128;
  int block_cols = 128;
  bool pow2_scales = false;  // quantize_fp8 rounds each scale_inv up to a power of two ([train] fp8_scale = pow2)
  // scale_inv is 1-D in the layout kernels::fp8_gemm reads (cuBLASLt's, fp8_gemm_scale_count below) rather than
  // [tiles of rows, tiles of cols]: the GEMM takes it as it is, with no relayout per call.
  bool gemm_layout = false;
};

// The GEMM's scale layout, cuBLASLt's VEC128 / BLK128x128: 1 x n tiles tile-major, scale (r, t) at t * ld + r
// with ld = rows rounded up to 4; 128 x 128 blocks row-major, at r * ld + t with ld = the tiles of a block row
// rounded up to 4; the padding zero. Its length for [rows, cols] in (block_rows x block_cols) tiles:
std::int64_t fp8_gemm_scale_count(std::int64_t rows, std::int64_t cols, int block_rows, int block_cols);
// Where tile (r, t)'s scale lives in q.scale_inv, in either layout: r * row + t * tile.
struct Fp8ScaleIndex {
  std::int64_t row = 0, tile = 0;
  R1_HD std::int64_t operator()(std::int64_t r, std::int64_t t) const { return r * row + t * tile; }
};
Fp8ScaleIndex fp8_scale_index(const Fp8Tensor& q);

// A tile's scale_inv from its max-abs: amax / 448 (1 for an all-zero tile), or with pow2 the power of two at
// or above it, so that scaling is exact in any precision (DeepSeek-V3's option, Transformer Engine's default).
R1_HD float fp8_scale_inv(float amax, bool pow2) {
  if (!(amax > 0.0f)) return 1.0f;
  const float s = amax / kF8E4M3Max;
  if (!pow2) return s;
  int e;
  const float m = frexpf(s, &e);  // s = m 2^e, m in [0.5, 1)
  return ldexpf(1.0f, m == 0.5f ? e - 1 : e);
}

// An empty block-scaled tensor in ctx's memory.
Fp8Tensor make_fp8(const Context& ctx, std::int64_t rows, std::int64_t cols, int block_rows, int block_cols);

// scale_inv = fp8_scale_inv(max|x| over the tile, out.pow2_scales); data = round_to_e4m3(x / scale_inv).
void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out);
// out = quantise(x^T) in one pass: x [R, C] (f32 or bf16), out [C, R] in out's tiles (over the transposed
// matrix). 1 x 128 tiles of x^T are 128 x 1 tiles of x: the weight gradient dW = dy^T x takes both dy and x
// quantised along the token dimension this way; 128 x 128 blocks give a weight's transposed copy for the
// input gradient dx = dy W, the same blocks as quantise(W) transposed.
void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out);

// y = data * scale_inv (y: f32 or bf16 [rows, cols]).
void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y);

// dst rows = src rows[i] (data and scales copied exactly): the expert-parallel dispatch regroups FP8 tokens so.
// src and dst in 1 x n tiles (one scale row per data row), of one tiling and width; rows: i32 [M] in [0, N),
// checked on the CPU (on the GPU the caller's).
void gather_fp8_rows(const Context& ctx, const Fp8Tensor& src, const Tensor& rows, const Fp8Tensor& dst);

// Shapes and dtypes agree (the scales in q's layout; the GEMM-layout only where gemm_layout_ok).
void check_fp8(const Fp8Tensor& q, const Tensor& dense, const char* op, bool gemm_layout_ok = false);

// q with its scales in the GEMM's layout (the same data; 1 x n tiles or 128 x 128 blocks; one launch): a
// weight's copy, laid out once per optimizer step instead of at every GEMM.
Fp8Tensor to_gemm_layout(const Context& ctx, const Fp8Tensor& q);

// The routed experts' operands, every expert's at once (one launch each; `offsets`: E+1 host values splitting
// the rows of x or q by expert, as for kernels::grouped_gemm). Expert e's operand is a view of one data buffer
// and one scale buffer, its scales in the GEMM's layout, each expert's block 16-byte aligned.
//  - rows: expert e's rows of q (1 x n tiles along K, q's data viewed as it is, the scales relaid), or of x
//    quantised so -- the A operands of the forward and the input gradient;
//  - columns: expert e's rows of x transposed, x_e^T [C, T_e rounded up to 16], in 1 x 128 tiles along its
//    tokens (its first token starts a tile; zeros pad its last tile to 16 tokens, as cuBLASLt needs the inner
//    dimension) -- the weight gradient's operands. The same bytes as quantising each expert alone.
std::vector<Fp8Tensor> fp8_expert_rows(const Context& ctx, const Fp8Tensor& q, std::span<const std::int64_t> offsets);
std::vector<Fp8Tensor> quantize_fp8_expert_rows(const Context& ctx, const Tensor& x, std::span<const std::int64_t> offsets,
                                                bool pow2_scales);
std::vector<Fp8Tensor> quantize_fp8_expert_columns(const Context& ctx, const Tensor& x,
                                                   std::span<const std::int64_t> offsets, bool pow2_scales);
constexpr std::int64_t kFp8LtInner = 16;  // cuBLASLt's FP8 inner dimension: a multiple of 16

// One expert's operand in a grouped quantisation or scale relayout (kernels/fp8.cpp plans them; the backends
// run them): `tokens` source rows from `first` (x's rows; or q's scale rows for a relayout) make the operand
// [rows, cols] (rows = tokens, or for the columns form rows = x's columns and cols = tokens rounded up to 16),
// written at element `data` of the data buffer and `scales` of the scale buffer; its 1 x 128 tiles start at
// `tiles` over all groups (for a relayout, rows and cols count tiles, and `tiles` is its first layout slot).
struct Fp8Group {
  std::int64_t first = 0, tokens = 0, rows = 0, cols = 0, data = 0, scales = 0, tiles = 0;
};
R1_HD std::int64_t fp8_round4(std::int64_t v) { return (v + 3) / 4 * 4; }
// Slot i of the GEMM-layout scales of [rows tiles, tiles per row] (blocks: BLK128x128, else VEC128): its tile
// (r, t), false for padding.
R1_HD bool fp8_layout_slot(std::int64_t i, std::int64_t rows, std::int64_t tiles, bool blocks, std::int64_t& r,
                           std::int64_t& t) {
  const std::int64_t ld = blocks ? fp8_round4(tiles) : fp8_round4(rows);
  r = blocks ? i / ld : i % ld;
  t = blocks ? i % ld : i / ld;
  return r < rows && t < tiles;
}

}  // namespace r1::kernels
