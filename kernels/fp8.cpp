#include "kernels/fp8.hpp"

#include "kernels/cpu/fp8.hpp"
#include "kernels/cuda/fp8.hpp"
#include "kernels/gather_rows.hpp"

namespace r1::kernels {

Fp8Tensor make_fp8(const Context& ctx, std::int64_t rows, std::int64_t cols, int block_rows, int block_cols) {
  R1_REQUIRE(block_rows > 0 && block_cols > 0, "fp8: block sizes must be positive, got ", block_rows, "x", block_cols);
  Fp8Tensor q;
  q.block_rows = block_rows;
  q.block_cols = block_cols;
  q.data = ctx.empty({rows, cols}, DType::f8e4m3);
  q.scale_inv = ctx.empty({(rows + block_rows - 1) / block_rows, (cols + block_cols - 1) / block_cols}, DType::f32);
  return q;
}

std::int64_t fp8_gemm_scale_count(std::int64_t rows, std::int64_t cols, int block_rows, int block_cols) {
  const std::int64_t tr = (rows + block_rows - 1) / block_rows, tc = (cols + block_cols - 1) / block_cols;
  return block_rows == 1 ? tc * fp8_round4(tr) : tr * fp8_round4(tc);
}

Fp8ScaleIndex fp8_scale_index(const Fp8Tensor& q) {
  const std::int64_t tr = (q.data.dim(0) + q.block_rows - 1) / q.block_rows;
  const std::int64_t tc = (q.data.dim(1) + q.block_cols - 1) / q.block_cols;
  if (!q.gemm_layout) return {tc, 1};
  return q.block_rows == 1 ? Fp8ScaleIndex{1, fp8_round4(tr)} : Fp8ScaleIndex{fp8_round4(tc), 1};
}

void check_fp8(const Fp8Tensor& q, const Tensor& dense, const char* op, bool gemm_layout_ok) {
  R1_REQUIRE(dense.rank() == 2 && q.data.rank() == 2 && dense.shape() == q.data.shape(), op, ": dense ", dense.str(),
             " and fp8 data ", q.data.str(), " must be the same 2-D shape");
  R1_REQUIRE(q.data.dtype() == DType::f8e4m3 && q.scale_inv.dtype() == DType::f32, op, ": fp8 data must be f8e4m3 (",
             q.data.str(), ") and scales f32 (", q.scale_inv.str(), ")");
  R1_REQUIRE(gemm_layout_ok || !q.gemm_layout, op, ": takes scales as [row tiles, column tiles], not in the GEMM's "
             "layout (", q.data.str(), ")");
  if (q.gemm_layout) {
    const Shape want{fp8_gemm_scale_count(dense.dim(0), dense.dim(1), q.block_rows, q.block_cols)};
    R1_REQUIRE(q.scale_inv.shape() == want, op, ": scale_inv ", q.scale_inv.str(), " must be ", want.str(),
               " in the GEMM's layout for ", q.block_rows, "x", q.block_cols, " blocks of ", dense.shape().str());
    return;
  }
  const Shape want{(dense.dim(0) + q.block_rows - 1) / q.block_rows, (dense.dim(1) + q.block_cols - 1) / q.block_cols};
  R1_REQUIRE(q.scale_inv.shape() == want, op, ": scale_inv ", q.scale_inv.str(), " must be ", want.str(), " for ",
             q.block_rows, "x", q.block_cols, " blocks of ", dense.shape().str());
}

void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  require_here(ctx, "quantize_fp8", "x", x);
  require_here(ctx, "quantize_fp8", "data", out.data);
  require_here(ctx, "quantize_fp8", "scale_inv", out.scale_inv);
  check_fp8(out, x, "quantize_fp8");
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::quantize_fp8(ctx, x, out);
#endif
  cpu::quantize_fp8(x, out);
}

void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  require_here(ctx, "quantize_fp8_transposed", "x", x);
  require_here(ctx, "quantize_fp8_transposed", "data", out.data);
  require_here(ctx, "quantize_fp8_transposed", "scale_inv", out.scale_inv);
  R1_REQUIRE(x.rank() == 2 && out.data.rank() == 2 && out.data.dim(0) == x.dim(1) && out.data.dim(1) == x.dim(0),
             "quantize_fp8_transposed: out ", out.data.str(), " must be x ", x.str(), " transposed");
  check_fp8(out, out.data, "quantize_fp8_transposed");
  if (x.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::quantize_fp8_transposed(ctx, x, out);
#endif
  cpu::quantize_fp8_transposed(x, out);
}

void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y) {
  require_here(ctx, "dequantize_fp8", "y", y);
  require_here(ctx, "dequantize_fp8", "data", q.data);
  require_here(ctx, "dequantize_fp8", "scale_inv", q.scale_inv);
  check_fp8(q, y, "dequantize_fp8");
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::dequantize_fp8(ctx, q, y);
#endif
  cpu::dequantize_fp8(q, y);
}

namespace {
void relayout_scales([[maybe_unused]] const Context& ctx, const Tensor& s, std::span<const Fp8Group> groups, bool blocks, const Tensor& out) {
  if (out.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::relayout_fp8_scales(ctx, s, groups, blocks, out);
#endif
  cpu::relayout_fp8_scales(s, groups, blocks, out);
}

void check_offsets(std::span<const std::int64_t> offsets, std::int64_t rows, const char* op) {
  R1_REQUIRE(!offsets.empty() && offsets.front() == 0 && offsets.back() == rows, op, ": offsets must run from 0 to the ",
             rows, " rows, got ", offsets.size(), " values");
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e)
    R1_REQUIRE(offsets[e] <= offsets[e + 1], op, ": offsets decrease at expert ", e, ": ", offsets[e], " > ", offsets[e + 1]);
}

// Every expert's operand as a view of the buffers (data 2-D [rows, K] for the rows form, 1-D for columns).
std::vector<Fp8Tensor> expert_views(const Tensor& data, const Tensor& scales, std::span<const Fp8Group> groups,
                                    bool rows_form, bool pow2) {
  std::vector<Fp8Tensor> out;
  for (const Fp8Group& g : groups) {
    Fp8Tensor q;
    q.block_rows = 1;
    q.block_cols = kFp8Tile;
    q.pow2_scales = pow2;
    q.gemm_layout = true;
    q.data = rows_form ? data.slice(g.first, g.first + g.tokens)
                       : data.slice(g.data, g.data + g.rows * g.cols).view({g.rows, g.cols});
    q.scale_inv = scales.slice(g.scales, g.scales + fp8_gemm_scale_count(g.rows, g.cols, 1, kFp8Tile));
    out.push_back(q);
  }
  return out;
}

// Groups of the rows form (forward, dgrad) or the columns form (wgrad) for x [T, C] split by `offsets`;
// data_total and scale_total get the data elements and scales of all of them.
std::vector<Fp8Group> plan_groups(std::span<const std::int64_t> offsets, std::int64_t cols, bool columns,
                                  std::int64_t& data_total, std::int64_t& scale_total) {
  std::vector<Fp8Group> groups;
  Fp8Group g;
  for (std::size_t e = 0; e + 1 < offsets.size(); ++e) {
    g.first = offsets[e];
    g.tokens = offsets[e + 1] - offsets[e];
    g.rows = columns ? cols : g.tokens;
    g.cols = columns ? (g.tokens + kFp8LtInner - 1) / kFp8LtInner * kFp8LtInner : cols;
    g.data = columns ? g.data : g.first * cols;
    groups.push_back(g);
    const std::int64_t tiles = (g.cols + kFp8Tile - 1) / kFp8Tile;
    g.data += columns ? g.rows * g.cols : 0;
    g.scales += tiles * fp8_round4(g.rows);
    g.tiles += tiles * g.rows;
  }
  data_total = columns ? g.data : offsets.back() * cols;
  scale_total = g.scales;
  return groups;
}

std::vector<Fp8Tensor> quantize_experts(const Context& ctx, const Tensor& x, std::span<const std::int64_t> offsets,
                                        bool pow2, bool columns, const char* op) {
  require_here(ctx, op, "x", x);
  R1_REQUIRE(x.rank() == 2 && (x.dtype() == DType::f32 || x.dtype() == DType::bf16), op, ": x must be 2-D f32 or bf16, got ",
             x.str());
  check_offsets(offsets, x.dim(0), op);
  std::int64_t data_total = 0, scale_total = 0;
  const std::vector<Fp8Group> groups = plan_groups(offsets, x.dim(1), columns, data_total, scale_total);
  const Tensor data = columns ? ctx.empty({data_total}, DType::f8e4m3) : ctx.empty(x.shape(), DType::f8e4m3);
  const Tensor scales = ctx.empty({scale_total}, DType::f32);
  if (scale_total > 0) {
#if defined(R1HPC_HAVE_CUDA)
    if (ctx.is_cuda()) {
      cuda::quantize_fp8_groups(ctx, x, groups, columns, pow2, data, scales);
    } else
#endif
      cpu::quantize_fp8_groups(x, groups, columns, pow2, data, scales);
  }
  return expert_views(data, scales, groups, !columns, pow2);
}
}  // namespace

Fp8Tensor to_gemm_layout(const Context& ctx, const Fp8Tensor& q) {
  check_fp8(q, q.data, "to_gemm_layout");
  require_here(ctx, "to_gemm_layout", "scale_inv", q.scale_inv);
  Fp8Tensor out = q;
  out.gemm_layout = true;
  out.scale_inv = ctx.empty({fp8_gemm_scale_count(q.data.dim(0), q.data.dim(1), q.block_rows, q.block_cols)}, DType::f32);
  const Fp8Group all{.rows = q.scale_inv.dim(0), .cols = q.scale_inv.dim(1)};
  relayout_scales(ctx, q.scale_inv, {&all, 1}, q.block_rows != 1, out.scale_inv);
  return out;
}

std::vector<Fp8Tensor> fp8_expert_rows(const Context& ctx, const Fp8Tensor& q, std::span<const std::int64_t> offsets) {
  check_fp8(q, q.data, "fp8_expert_rows");
  require_here(ctx, "fp8_expert_rows", "scale_inv", q.scale_inv);
  R1_REQUIRE(q.block_rows == 1 && q.block_cols == kFp8Tile, "fp8_expert_rows: q ", q.data.str(),
             " must be in 1 x 128 tiles, got ", q.block_rows, "x", q.block_cols);
  check_offsets(offsets, q.data.dim(0), "fp8_expert_rows");
  std::int64_t data_total = 0, scale_total = 0;
  std::vector<Fp8Group> groups = plan_groups(offsets, q.data.dim(1), false, data_total, scale_total);
  // The relayout counts in tiles: a group's rows are its scale rows, its columns the tiles per row, `tiles`
  // the first of its layout slots.
  std::int64_t slots = 0;
  for (Fp8Group& g : groups) {
    g.cols = q.scale_inv.dim(1);
    g.tiles = slots;
    slots += g.cols * fp8_round4(g.rows);
  }
  const Tensor scales = ctx.empty({scale_total}, DType::f32);
  relayout_scales(ctx, q.scale_inv, groups, false, scales);
  for (Fp8Group& g : groups) g.cols = q.data.dim(1);
  return expert_views(q.data, scales, groups, true, q.pow2_scales);
}

std::vector<Fp8Tensor> quantize_fp8_expert_rows(const Context& ctx, const Tensor& x, std::span<const std::int64_t> offsets,
                                                bool pow2_scales) {
  return quantize_experts(ctx, x, offsets, pow2_scales, false, "quantize_fp8_expert_rows");
}

std::vector<Fp8Tensor> quantize_fp8_expert_columns(const Context& ctx, const Tensor& x,
                                                   std::span<const std::int64_t> offsets, bool pow2_scales) {
  return quantize_experts(ctx, x, offsets, pow2_scales, true, "quantize_fp8_expert_columns");
}

void gather_fp8_rows(const Context& ctx, const Fp8Tensor& src, const Tensor& rows, const Fp8Tensor& dst) {
  require_here(ctx, "gather_fp8_rows", "src", src.data);
  require_here(ctx, "gather_fp8_rows", "dst", dst.data);
  check_fp8(src, src.data, "gather_fp8_rows src");
  check_fp8(dst, dst.data, "gather_fp8_rows dst");
  R1_REQUIRE(src.block_rows == 1 && dst.block_rows == 1 && src.block_cols == dst.block_cols &&
                 src.data.dim(1) == dst.data.dim(1) && rows.rank() == 1 && rows.dtype() == DType::i32 &&
                 rows.numel() == dst.data.dim(0),
             "gather_fp8_rows: src ", src.data.str(), " and dst ", dst.data.str(), " must be in the same 1 x ",
             src.block_cols, " tiles with one i32 row index per dst row, got ", rows.str());
  gather_rows(ctx, src.scale_inv, rows, dst.scale_inv);  // also checks the rows on the CPU
  if (dst.data.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::gather_fp8_rows(ctx, src.data, rows, dst.data);
#endif
  cpu::gather_fp8_rows(src.data, rows, dst.data);
}

}  // namespace r1::kernels
