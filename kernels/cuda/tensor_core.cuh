// Tensor-core building blocks (bf16 in, f32 accumulate, sm_80+): asynchronous global -> shared copies,
// ldmatrix loads, the m16n8k16 mma, and the fragments of A operands and accumulators of a warp's 16-row tile.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "core/dtype.hpp"

namespace r1::kernels::cuda {

__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte asynchronous global -> shared copy; an invalid source zero-fills the destination.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(std::uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(std::uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// c (16x8, f32) += a (16x16, bf16, row) * b (16x8, bf16, col).
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

// The A fragment (16 rows x 16 columns starting at column 16 kk) of a row-major shared tile.
template <int LD>
__device__ __forceinline__ void a_from_smem(std::uint32_t (&a)[4], const bf16* s, int kk, int lane) {
  ldsm_x4(a, s + (lane & 15) * LD + kk * 16 + (lane >> 4) * 8);
}
// The A fragment (columns 16 kk..16 kk + 15) of a 16 x K accumulator tile, rounded to bf16: the layouts
// of an mma result and of an mma A operand coincide, so P and dS never leave registers.
template <int K>
__device__ __forceinline__ void a_from_acc(std::uint32_t (&a)[4], const float (&c)[K / 8][4], int kk) {
  a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// acc (16 x N) += A (16 x K, fragments from afrag) * B^T, B a shared tile stored [N][K] with row stride LDB.
template <int N, int K, int LDB, class AFrag>
__device__ __forceinline__ void mma_abt(float (&acc)[N / 8][4], const AFrag& afrag, const bf16* b, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    std::uint32_t a[4];
    afrag(kk, a);
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      std::uint32_t f[4];
      ldsm_x4(f, b + (nn * 16 + (lane & 7) + (lane >> 4) * 8) * LDB + kk * 16 + ((lane >> 3) & 1) * 8);
      mma(acc[2 * nn], a, f[0], f[1]);
      mma(acc[2 * nn + 1], a, f[2], f[3]);
    }
  }
}
// acc (16 x N) += A (16 x K) * B, B a shared tile stored [K][N] with row stride LDB (read transposed).
template <int N, int K, int LDB, class AFrag>
__device__ __forceinline__ void mma_ab(float (&acc)[N / 8][4], const AFrag& afrag, const bf16* b, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    std::uint32_t a[4];
    afrag(kk, a);
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      std::uint32_t f[4];
      ldsm_x4_trans(f, b + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDB + nn * 16 + (lane >> 4) * 8);
      mma(acc[2 * nn], a, f[0], f[1]);
      mma(acc[2 * nn + 1], a, f[2], f[3]);
    }
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
}

// Stores a warp's 16 x D accumulator tile (rows row0 + g and row0 + g + 8 of this thread) times `mul`, as bf16
// or as f32 (Out).
template <int D, class Out>
__device__ __forceinline__ void store_rows(Out* base, std::int64_t stride, int row0, int S, const float (&acc)[D / 8][4],
                                           const float (&mul)[2], int lane) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + lane / 4 + 8 * r;
    if (row >= S) continue;
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
      Out* at = base + row * stride + db * 8 + 2 * (lane % 4);
      const float lo = acc[db][2 * r] * mul[r], hi = acc[db][2 * r + 1] * mul[r];
      if constexpr (std::is_same_v<Out, float>) {
        *reinterpret_cast<float2*>(at) = make_float2(lo, hi);
      } else {
        *reinterpret_cast<std::uint32_t*>(at) = pack_bf16(lo, hi);
      }
    }
  }
}

}  // namespace r1::kernels::cuda
