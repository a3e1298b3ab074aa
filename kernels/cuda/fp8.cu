// CUDA FP8 block quantisation, plain or transposed: one thread block per tile (max-abs by block reduction,
// then scale); dequantisation is elementwise. The experts' grouped forms take their groups as a kernel
// parameter (up to kGroupsPerLaunch per launch, no upload), each thread block or thread finding its group by a
// binary search over the groups' first tiles.
#include <vector>

#include "kernels/cuda/fp8.hpp"
#include "kernels/cuda/fp8_tile.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;

// One thread block per tile of out [out_rows, out_cols]: out element (o, p) is x[o, p], or with Transposed
// x[p, o] (x has `cols` columns). Consecutive threads walk x's contiguous columns, so the loads coalesce.
template <bool Transposed, class T>
__global__ void quantize_kernel(std::int64_t out_rows, std::int64_t out_cols, std::int64_t cols, int br, int bc, bool pow2,
                                const T* x, f8e4m3* q, float* s) {
  const std::int64_t tiles_per_row = (out_cols + bc - 1) / bc;
  const std::int64_t o0 = blockIdx.x / tiles_per_row * br, p0 = blockIdx.x % tiles_per_row * bc;
  const int no = static_cast<int>(min(static_cast<std::int64_t>(br), out_rows - o0));
  const int np = static_cast<int>(min(static_cast<std::int64_t>(bc), out_cols - p0));
  const int n = no * np;
  const auto element = [&](int i, std::int64_t& o, std::int64_t& p) {
    o = o0 + (Transposed ? i % no : i / np);
    p = p0 + (Transposed ? i / no : i % np);
    return Transposed ? p * cols + o : o * cols + p;
  };
  float amax = 0.0f;
  std::int64_t o, p;
  for (int i = threadIdx.x; i < n; i += kThreads) amax = fmaxf(amax, fabsf(load_f32(x[element(i, o, p)])));
  const float scale = fp8_block_scale_inv<kThreads>(amax, pow2);
  if (threadIdx.x == 0) s[blockIdx.x] = scale;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const std::int64_t xi = element(i, o, p);
    q[o * out_cols + p] = to_f8e4m3(load_f32(x[xi]) / scale);
  }
}

template <bool Transposed>
void quantize(const Context& ctx, const Tensor& x, const Fp8Tensor& out, const char* name) {
  if (x.numel() == 0) return;
  const unsigned grid = static_cast<unsigned>(out.scale_inv.numel());  // one block per tile
  with_float_type(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    quantize_kernel<Transposed><<<grid, kThreads, 0, ctx.cuda_resources().stream>>>(
        out.data.dim(0), out.data.dim(1), x.dim(1), out.block_rows, out.block_cols, out.pow2_scales, x.data<T>(),
        out.data.data<f8e4m3>(), out.scale_inv.data<float>());
  });
  R1_CUDA_LAUNCHED(name);
}

constexpr int kGroupsPerLaunch = 64;  // 3.6 KB of parameters, under the classic 4 KB
struct GroupChunk {
  int n;
  Fp8Group g[kGroupsPerLaunch];
};
// The last group whose first unit (tile or slot) is at or before `unit`: empty groups share their successor's
// first unit and are never found.
__device__ const Fp8Group& find_group(const GroupChunk& c, std::int64_t unit) {
  int lo = 0, hi = c.n - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (c.g[mid].tiles <= unit) lo = mid;
    else hi = mid - 1;
  }
  return c.g[lo];
}

// Launches `launch(chunk, first unit, units)` per chunk of groups; count(g) is a group's units.
template <class Count, class LaunchChunk>
void for_chunks(std::span<const Fp8Group> groups, Count count, LaunchChunk launch) {
  for (std::size_t c0 = 0; c0 < groups.size(); c0 += kGroupsPerLaunch) {
    const std::size_t c1 = std::min(groups.size(), c0 + kGroupsPerLaunch);
    GroupChunk chunk{};
    chunk.n = static_cast<int>(c1 - c0);
    for (std::size_t i = c0; i < c1; ++i) chunk.g[i - c0] = groups[i];
    const std::int64_t base = groups[c0].tiles, end = groups[c1 - 1].tiles + count(groups[c1 - 1]);
    if (end > base) launch(chunk, base, end - base);
  }
}

__global__ void relayout_groups_kernel(const __grid_constant__ GroupChunk c, std::int64_t base, std::int64_t n,
                                       std::int64_t tc, bool blocks, const float* s, float* out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const Fp8Group& g = find_group(c, base + i);
    const std::int64_t slot = base + i - g.tiles;
    std::int64_t r, t;
    out[g.scales + slot] = fp8_layout_slot(slot, g.rows, g.cols, blocks, r, t) ? s[(g.first + r) * tc + t] : 0.0f;
  }
}

// Rows form: one thread block per 1 x 128 tile of a group's operand, element (r, p) = x[first + r, p]. The
// block of a group's last row also zeroes the layout's padding.
constexpr int kGroupThreads = kFp8Tile;
template <class T>
__global__ void quantize_rows_kernel(const __grid_constant__ GroupChunk c, std::int64_t base, std::int64_t xc, bool pow2,
                                     const T* x, f8e4m3* q, float* s) {
  const std::int64_t unit = base + blockIdx.x;
  const Fp8Group& g = find_group(c, unit);
  const std::int64_t local = unit - g.tiles, kt = (g.cols + kFp8Tile - 1) / kFp8Tile, ld = fp8_round4(g.rows);
  const std::int64_t r = local / kt, t = local % kt, p = t * kFp8Tile + threadIdx.x;
  const bool in = p < g.cols;
  const float v = in ? load_f32(x[(g.first + r) * xc + p]) : 0.0f;
  const float scale = fp8_block_scale_inv<kGroupThreads>(fabsf(v), pow2);
  if (threadIdx.x == 0) s[g.scales + t * ld + r] = scale;
  if (r == g.rows - 1 && threadIdx.x > 0 && threadIdx.x < ld - r) s[g.scales + t * ld + r + threadIdx.x] = 0.0f;
  if (in) q[g.data + r * g.cols + p] = to_f8e4m3(v / scale);
}

// Columns form: one thread block per kColTile columns of x by one 128-token tile, staged in shared memory so
// that both x's rows and the operand's rows (x's columns) are read and written along their length. Element
// (r, p) of the operand is x[first + p, r], zero past the group's tokens; the block of a group's last columns
// also zeroes the layout's padding.
constexpr int kColTile = 32, kColThreads = 256, kColWarps = kColThreads / 32;
template <class T>
__global__ void quantize_columns_kernel(const __grid_constant__ GroupChunk c, std::int64_t base, std::int64_t xc,
                                        bool pow2, const T* x, f8e4m3* q, float* s) {
  __shared__ float tile[kFp8Tile][kColTile + 1];
  __shared__ float scale[kColTile];
  const std::int64_t unit = base + blockIdx.x;
  const Fp8Group& g = find_group(c, unit);
  const std::int64_t col_tiles = (g.rows + kColTile - 1) / kColTile, local = unit - g.tiles;
  const std::int64_t r0 = local % col_tiles * kColTile, t = local / col_tiles, p0 = t * kFp8Tile;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int pp = warp; pp < kFp8Tile; pp += kColWarps) {
    const std::int64_t p = p0 + pp, r = r0 + lane;
    tile[pp][lane] = p < g.tokens && r < g.rows ? load_f32(x[(g.first + p) * xc + r]) : 0.0f;
  }
  __syncthreads();
  for (int col = warp; col < kColTile; col += kColWarps) {
    float amax = 0.0f;
    for (int pp = lane; pp < kFp8Tile; pp += 32) amax = fmaxf(amax, fabsf(tile[pp][col]));
    for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    if (lane == 0) scale[col] = fp8_scale_inv(amax, pow2);
  }
  __syncthreads();
  const std::int64_t ld = fp8_round4(g.rows);
  if (threadIdx.x < kColTile) {
    const std::int64_t r = r0 + threadIdx.x;
    if (r < g.rows) s[g.scales + t * ld + r] = scale[threadIdx.x];
    else if (r < ld) s[g.scales + t * ld + r] = 0.0f;  // the layout's padding
  }
  for (int i = threadIdx.x; i < kColTile * kFp8Tile; i += kColThreads) {
    const int col = i / kFp8Tile, pp = i % kFp8Tile;
    const std::int64_t r = r0 + col, p = p0 + pp;
    if (r < g.rows && p < g.cols) q[g.data + r * g.cols + p] = to_f8e4m3(tile[pp][col] / scale[col]);
  }
}

template <class T>
__global__ void dequantize_kernel(std::int64_t rows, std::int64_t cols, int br, int bc, std::int64_t tiles_per_row,
                                  const f8e4m3* q, const float* s, T* y) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    y[i] = store_as<T>(to_float(q[i]) * s[(r / br) * tiles_per_row + c / bc]);
  }
}

__global__ void gather_bytes_kernel(std::int64_t rows, std::int64_t cols, const std::int32_t* idx, const f8e4m3* src,
                                    f8e4m3* dst) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    dst[i] = src[static_cast<std::int64_t>(idx[r]) * cols + c];
  }
}
}  // namespace

void quantize_fp8(const Context& ctx, const Tensor& x, const Fp8Tensor& out) { quantize<false>(ctx, x, out, "quantize_fp8"); }
void quantize_fp8_transposed(const Context& ctx, const Tensor& x, const Fp8Tensor& out) {
  quantize<true>(ctx, x, out, "quantize_fp8_transposed");
}

void dequantize_fp8(const Context& ctx, const Fp8Tensor& q, const Tensor& y) {
  if (y.numel() == 0) return;
  const Launch l = elementwise_launch(ctx, y.numel());
  with_float_type(y.dtype(), "dequantize_fp8", [&](auto tag) {
    using T = decltype(tag);
    dequantize_kernel<<<l.grid, l.block, 0, l.stream>>>(y.dim(0), y.dim(1), q.block_rows, q.block_cols, q.scale_inv.dim(1),
                                                        q.data.data<f8e4m3>(), q.scale_inv.data<float>(), y.data<T>());
  });
  R1_CUDA_LAUNCHED("dequantize_fp8");
}

void relayout_fp8_scales(const Context& ctx, const Tensor& s, std::span<const Fp8Group> groups, bool blocks,
                         const Tensor& out) {
  const auto slots = [&](const Fp8Group& g) { return blocks ? g.rows * fp8_round4(g.cols) : g.cols * fp8_round4(g.rows); };
  for_chunks(groups, slots, [&](const GroupChunk& chunk, std::int64_t base, std::int64_t n) {
    const Launch l = elementwise_launch(ctx, n);
    relayout_groups_kernel<<<l.grid, l.block, 0, l.stream>>>(chunk, base, n, s.dim(1), blocks, s.data<float>(),
                                                             out.data<float>());
    R1_CUDA_LAUNCHED("fp8 scale relayout");
  });
}

void quantize_fp8_groups(const Context& ctx, const Tensor& x, std::span<const Fp8Group> groups, bool columns, bool pow2,
                         const Tensor& data, const Tensor& scales) {
  // The columns kernel's units are kColTile columns of a tile: each group's first unit counted again.
  const auto units = [columns](const Fp8Group& g) {
    const std::int64_t kt = (g.cols + kFp8Tile - 1) / kFp8Tile;
    return columns ? (g.rows + kColTile - 1) / kColTile * kt : g.rows * kt;
  };
  std::vector<Fp8Group> counted(groups.begin(), groups.end());
  std::int64_t first = 0;
  for (Fp8Group& g : counted) {
    g.tiles = first;
    first += units(g);
  }
  const cudaStream_t stream = ctx.cuda_resources().stream;
  with_float_type(x.dtype(), "quantize_fp8_groups", [&](auto tag) {
    using T = decltype(tag);
    for_chunks(counted, units, [&](const GroupChunk& chunk, std::int64_t base, std::int64_t n) {
      if (columns)
        quantize_columns_kernel<<<static_cast<unsigned>(n), kColThreads, 0, stream>>>(
            chunk, base, x.dim(1), pow2, x.data<T>(), data.data<f8e4m3>(), scales.data<float>());
      else
        quantize_rows_kernel<<<static_cast<unsigned>(n), kGroupThreads, 0, stream>>>(
            chunk, base, x.dim(1), pow2, x.data<T>(), data.data<f8e4m3>(), scales.data<float>());
      R1_CUDA_LAUNCHED("quantize_fp8 (experts)");
    });
  });
}

void gather_fp8_rows(const Context& ctx, const Tensor& src, const Tensor& rows, const Tensor& dst) {
  const Launch l = elementwise_launch(ctx, dst.numel());
  gather_bytes_kernel<<<l.grid, l.block, 0, l.stream>>>(dst.dim(0), dst.dim(1), rows.data<std::int32_t>(),
                                                        src.data<f8e4m3>(), dst.data<f8e4m3>());
  R1_CUDA_LAUNCHED("gather_fp8_rows");
}

}  // namespace r1::kernels::cuda
