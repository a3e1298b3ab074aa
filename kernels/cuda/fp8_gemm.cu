// CUDA block-scaled FP8 GEMM: cuBLASLt with Hopper's per-tile scale modes (VEC128_32F for 1 x 128 tiles,
// BLK128x128_32F for 128 x 128 blocks), which read the scales in their own layouts (relayout_scales below).
// Row-major C = A B^T is the column-major C^T = B^T A with both operands K-major (the TN form FP8 needs),
// so B is cuBLASLt's first operand. cuBLASLt needs K-major rows 16-byte aligned: an operand whose K is not a
// multiple of 16 (an expert's weight gradient, whose inner dimension is its token count) is copied with its
// rows zero-padded to the next multiple of 16 (the padding stays inside its last 128-wide tile, so the scales
// are unchanged and the sums too). Where cuBLASLt has no algorithm, a plain kernel computes the same tile sums.
#include "kernels/cuda/fp8_gemm.hpp"

#include <atomic>
#include <cstdint>

#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"
#include "kernels/elementwise.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;
std::atomic<std::int64_t> plain_calls{0};  // fp8_gemm_plain_calls()

// Compact row-major scales [tr, tc] into cuBLASLt's layout: 1 x 128 tiles (VEC128) with the rows contiguous,
// out[t * ld + r] (ld = rows rounded up to 4); 128 x 128 blocks (BLK128x128) with the K blocks contiguous,
// out[r * ld + t] (ld = tc rounded up to 4). Padding stays zero.
__global__ void relayout_scales_kernel(std::int64_t tr, std::int64_t tc, bool rows_contiguous, std::int64_t ld,
                                       const float* s, float* out) {
  const std::int64_t n = tr * tc;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / tc, t = i % tc;
    out[rows_contiguous ? t * ld + r : r * ld + t] = s[i];
  }
}

// The fallback: one thread per element of C, tile sums in f32 scaled into an f32 running sum.
template <class T>
__global__ void fp8_gemm_plain_kernel(std::int64_t m, std::int64_t n, std::int64_t k, int b_rows, const f8e4m3* a,
                                      const float* sa, const f8e4m3* b, const float* sb, float alpha, float beta, T* c) {
  const std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x, i = blockIdx.y;
  if (j >= n) return;
  const std::int64_t kt = (k + kFp8Tile - 1) / kFp8Tile;
  float acc = 0.0f;
  for (std::int64_t t = 0; t < kt; ++t) {
    float tile = 0.0f;
    for (std::int64_t q = t * kFp8Tile; q < min(k, (t + 1) * kFp8Tile); ++q) tile += to_float(a[i * k + q]) * to_float(b[j * k + q]);
    acc += tile * sa[i * kt + t] * sb[(j / b_rows) * kt + t];
  }
  float out = alpha * acc;
  if (beta != 0.0f) out += beta * load_f32(c[i * n + j]);
  c[i * n + j] = store_as<T>(out);
}

std::int64_t round4(std::int64_t v) { return (v + 3) / 4 * 4; }

Tensor lt_scales(const Context& ctx, const Fp8Tensor& q) {
  const std::int64_t tr = q.scale_inv.dim(0), tc = q.scale_inv.dim(1);
  const bool vec = q.block_rows == 1;
  const std::int64_t ld = vec ? round4(tr) : round4(tc);
  const Tensor out = ctx.zeros({vec ? tc * ld : tr * ld}, DType::f32);
  const Launch l = elementwise_launch(ctx, tr * tc);
  relayout_scales_kernel<<<l.grid, l.block, 0, l.stream>>>(tr, tc, vec, ld, q.scale_inv.data<float>(), out.data<float>());
  R1_CUDA_LAUNCHED("fp8_gemm scales");
  return out;
}

struct LtLayout {
  cublasLtMatrixLayout_t h = nullptr;
  LtLayout(cudaDataType_t t, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
    R1_CUBLAS(cublasLtMatrixLayoutCreate(&h, t, rows, cols, ld));
  }
  ~LtLayout() { cublasLtMatrixLayoutDestroy(h); }
  LtLayout(const LtLayout&) = delete;
  LtLayout& operator=(const LtLayout&) = delete;
};

struct LtDesc {
  cublasLtMatmulDesc_t h = nullptr;
  LtDesc() { R1_CUBLAS(cublasLtMatmulDescCreate(&h, CUBLAS_COMPUTE_32F, CUDA_R_32F)); }
  ~LtDesc() { cublasLtMatmulDescDestroy(h); }
  LtDesc(const LtDesc&) = delete;
  LtDesc& operator=(const LtDesc&) = delete;
  template <class V>
  void set(cublasLtMatmulDescAttributes_t a, const V& v) { R1_CUBLAS(cublasLtMatmulDescSetAttribute(h, a, &v, sizeof v)); }
};

// C = alpha A B^T + beta C through cuBLASLt; false where it has no algorithm for the problem.
bool lt_fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, float alpha, float beta) {
  CudaResources& r = ctx.cuda_resources();
  const std::int64_t m = a.data.dim(0), n = b.data.dim(0), k = a.data.dim(1);
  const Tensor sa = lt_scales(ctx, a), sb = lt_scales(ctx, b);
  LtDesc desc;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  const std::int32_t mode_first = b.block_rows == 1 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                                    : CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  const std::int32_t mode_second = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  desc.set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, mode_first);
  desc.set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, mode_second);
  desc.set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(sb.raw()));
  desc.set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(sa.raw()));
  const cudaDataType_t tc = c.dtype() == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  LtLayout lb(CUDA_R_8F_E4M3, k, n, k), la(CUDA_R_8F_E4M3, k, m, k), lc(tc, n, m, n);
  // The routed experts' token counts change every step and set M (forward, dgrad) or K (wgrad): a
  // heuristic query per new count costs milliseconds, so algorithms are kept per power-of-two bucket of M
  // and K and checked against the exact problem (cublasLtMatmulAlgoCheck), with an exact query where the
  // bucket's algorithm does not apply.
  const auto key_for = [&](std::int64_t km, std::int64_t kk) {
    return std::make_tuple(static_cast<int>(CUDA_R_8F_E4M3), static_cast<int>(tc), mode_first, beta != 0.0f ? 4 : 0, 0, km, n,
                           kk, 1LL, 0LL, 0LL, 1);
  };
  const auto query = [&](std::int64_t km, std::int64_t kk) -> const cublasLtMatmulAlgo_t* {
    const auto key = key_for(km, kk);
    if (auto it = r.gemm_algos.find(key); it != r.gemm_algos.end()) return &it->second;
    // Query at the bucket's own shape, so the algorithm suits the bucket rather than its first member.
    LtLayout qb(CUDA_R_8F_E4M3, kk, n, kk), qa(CUDA_R_8F_E4M3, kk, km, kk), qc(tc, n, km, n);
    cublasLtMatmulPreference_t pref = nullptr;
    R1_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    const std::uint64_t ws = r.workspace_bytes;
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(r.lt, desc.h, qb.h, qa.h, qc.h, qc.h, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) return nullptr;
    return &r.gemm_algos.emplace(key, result.algo).first->second;
  };
  const auto fits = [&](const cublasLtMatmulAlgo_t* algo) {
    cublasLtMatmulHeuristicResult_t check{};
    return algo && cublasLtMatmulAlgoCheck(r.lt, desc.h, lb.h, la.h, lc.h, lc.h, algo, &check) == CUBLAS_STATUS_SUCCESS &&
           check.workspaceSize <= r.workspace_bytes;
  };
  const auto bucket = [](std::int64_t v) {
    std::int64_t b = 16;
    while (b < v) b *= 2;
    return b;
  };
  const cublasLtMatmulAlgo_t* algo = query(bucket(m), bucket(k));
  if (!fits(algo)) algo = query(m, k);
  if (!algo) return false;
  const cublasStatus_t s = cublasLtMatmul(r.lt, desc.h, &alpha, b.data.raw(), lb.h, a.data.raw(), la.h, &beta, c.raw(),
                                          lc.h, c.raw(), lc.h, algo, r.workspace, r.workspace_bytes, r.stream);
  if (s != CUBLAS_STATUS_SUCCESS)
    R1_FAIL(cuda, "cublasLtMatmul fp8 M=", m, " N=", n, " K=", k, ": ", cublasLtGetStatusString(s));
  return true;
}

void plain_fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt) {
  const std::int64_t m = a.data.dim(0), n = b.data.dim(0), k = a.data.dim(1);
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(m));
  with_float_type(c.dtype(), "fp8_gemm", [&](auto tag) {
    using T = decltype(tag);
    fp8_gemm_plain_kernel<<<grid, kThreads, 0, ctx.cuda_resources().stream>>>(
        m, n, k, b.block_rows, a.data.data<f8e4m3>(), a.scale_inv.data<float>(), b.data.data<f8e4m3>(),
        b.scale_inv.data<float>(), opt.alpha, opt.beta, c.data<T>());
  });
  R1_CUDA_LAUNCHED("fp8_gemm (plain)");
}

bool aligned16(const Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.raw()) % 16 == 0; }

// q with its rows zero-padded from K to k16 elements (a multiple of 16): same scales, same tile sums.
Fp8Tensor padded_k(const Context& ctx, const Fp8Tensor& q, std::int64_t k16) {
  Fp8Tensor p = q;
  const std::int64_t rows = q.data.dim(0), k = q.data.dim(1);
  p.data = ctx.zeros({rows, k16}, DType::f8e4m3);
  R1_CUDA(cudaMemcpy2DAsync(p.data.raw(), static_cast<std::size_t>(k16), q.data.raw(), static_cast<std::size_t>(k),
                            static_cast<std::size_t>(k), static_cast<std::size_t>(rows), cudaMemcpyDeviceToDevice,
                            ctx.cuda_resources().stream));
  return p;
}
}  // namespace

void fp8_gemm(const Context& ctx, const Fp8Tensor& a_in, const Fp8Tensor& b_in, const Tensor& c, const Fp8GemmOptions& opt) {
  const std::int64_t k = a_in.data.dim(1), k16 = (k + 15) / 16 * 16;
  const bool pad = k != k16 || !aligned16(a_in.data) || !aligned16(b_in.data);
  const Fp8Tensor a = pad ? padded_k(ctx, a_in, k16) : a_in, b = pad ? padded_k(ctx, b_in, k16) : b_in;
  const bool lt_shape = aligned16(c);
  if (lt_shape && lt_fp8_gemm(ctx, a, b, c, opt.alpha, opt.beta)) return;
  // Some builds of cuBLASLt take these scale modes only without C: then C = alpha A B^T goes to a scratch
  // tensor first and is added.
  if (lt_shape && opt.beta != 0.0f) {
    const Tensor t = ctx.empty(c.shape(), c.dtype());
    if (lt_fp8_gemm(ctx, a, b, t, opt.alpha, 0.0f)) {
      if (opt.beta != 1.0f) scale(ctx, opt.beta, c);
      return axpy(ctx, 1.0f, t, c);
    }
  }
  ++plain_calls;
  plain_fp8_gemm(ctx, a, b, c, opt);
}

std::int64_t fp8_gemm_plain_calls() { return plain_calls.load(); }

}  // namespace r1::kernels::cuda
