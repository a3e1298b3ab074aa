// CUDA block-scaled FP8 GEMM: cuBLASLt with Hopper's per-tile scale modes (VEC128_32F for 1 x 128 tiles,
// BLK128x128_32F for 128 x 128 blocks), which read the scales in their own layout (Fp8Tensor::gemm_layout;
// operands not yet in it are relaid per call). Row-major C = A B^T is the column-major C^T = B^T A with both
// operands K-major (the TN form FP8 needs), so B is cuBLASLt's first operand. cuBLASLt needs K-major rows
// 16-byte aligned: an operand whose K is not a multiple of 16 is copied with its rows zero-padded to the next
// multiple of 16 (the padding stays inside its last 128-wide tile, so the scales are unchanged and the sums
// too). Where cuBLASLt has no algorithm, a plain kernel computes the same tile sums.
// Per device, one matmul descriptor per scale mode (scale pointers set at each call) and per problem its
// layouts and checked algorithm are made once (LtPlans), so a call costs two attribute sets and the matmul;
// the experts' GEMMs go round-robin over the context's side streams, forked from and joined to its stream.
#include "kernels/cuda/fp8_gemm.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"
#include "kernels/elementwise.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;
std::atomic<std::int64_t> plain_calls{0};  // fp8_gemm_plain_calls()

// The fallback: one thread per element of C, tile sums in f32 scaled into an f32 running sum.
template <class T>
__global__ void fp8_gemm_plain_kernel(std::int64_t m, std::int64_t n, std::int64_t k, int b_rows, const f8e4m3* a,
                                      const float* sa, Fp8ScaleIndex ia, const f8e4m3* b, const float* sb,
                                      Fp8ScaleIndex ib, float alpha, float beta, T* c) {
  const std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x, i = blockIdx.y;
  if (j >= n) return;
  const std::int64_t kt = (k + kFp8Tile - 1) / kFp8Tile;
  float acc = 0.0f;
  for (std::int64_t t = 0; t < kt; ++t) {
    float tile = 0.0f;
    for (std::int64_t q = t * kFp8Tile; q < min(k, (t + 1) * kFp8Tile); ++q) tile += to_float(a[i * k + q]) * to_float(b[j * k + q]);
    acc += tile * sa[ia(i, t)] * sb[ib(j / b_rows, t)];
  }
  float out = alpha * acc;
  if (beta != 0.0f) out += beta * load_f32(c[i * n + j]);
  c[i * n + j] = store_as<T>(out);
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

// One problem (M, N, K, C's type, B's scale mode, beta != 0): its layouts (B, A, C as cuBLASLt's first,
// second and output operands) and the algorithm checked against it, or none.
struct LtPlan {
  LtLayout b, a, c;
  const cublasLtMatmulAlgo_t* algo = nullptr;  // in CudaResources::gemm_algos
  std::size_t workspace = 0;                   // what the algorithm needs
  LtPlan(std::int64_t m, std::int64_t n, std::int64_t k, cudaDataType_t tc)
      : b(CUDA_R_8F_E4M3, k, n, k), a(CUDA_R_8F_E4M3, k, m, k), c(tc, n, m, n) {}
};

struct LtPlans {
  std::map<std::int32_t, std::unique_ptr<LtDesc>> descs;  // by B's scale mode
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, int, std::int32_t, bool>, std::unique_ptr<LtPlan>> plans;
};

LtPlans& lt_plans(CudaResources& r) {
  if (!r.fp8_lt) r.fp8_lt = std::make_shared<LtPlans>();
  return *static_cast<LtPlans*>(r.fp8_lt.get());
}

std::int32_t b_scale_mode(const Fp8Tensor& b) {
  return b.block_rows == 1 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F : CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
}

LtDesc& lt_desc(LtPlans& p, std::int32_t mode_first) {
  std::unique_ptr<LtDesc>& d = p.descs[mode_first];
  if (d) return *d;
  d = std::make_unique<LtDesc>();
  d->set(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
  d->set(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
  const std::int32_t mode_second = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  d->set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, mode_first);
  d->set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, mode_second);
  return *d;
}

// The plan of C [m, n] (type tc) = A B^T, K = k, made at its first call. The routed experts' token counts
// change every step and set M (forward, dgrad) or K (wgrad): a heuristic query per new count costs
// milliseconds, so algorithms are kept per power-of-two bucket of M and K and checked against the exact
// problem (cublasLtMatmulAlgoCheck), with an exact query where the bucket's algorithm does not apply.
const LtPlan& lt_plan(CudaResources& r, LtPlans& plans, LtDesc& desc, std::int64_t m, std::int64_t n, std::int64_t k,
                      cudaDataType_t tc, std::int32_t mode_first, bool beta) {
  std::unique_ptr<LtPlan>& plan = plans.plans[std::make_tuple(m, n, k, static_cast<int>(tc), mode_first, beta)];
  if (plan) return *plan;
  plan = std::make_unique<LtPlan>(m, n, k, tc);
  const auto query = [&](std::int64_t km, std::int64_t kk) -> const cublasLtMatmulAlgo_t* {
    const auto key = std::make_tuple(static_cast<int>(CUDA_R_8F_E4M3), static_cast<int>(tc), mode_first, beta ? 4 : 0, 0,
                                     km, n, kk, 1LL, 0LL, 0LL, 1);
    if (auto it = r.gemm_algos.find(key); it != r.gemm_algos.end()) return &it->second;
    // Query at the bucket's own shape, so the algorithm suits the bucket rather than its first member.
    const LtPlan q(km, n, kk, tc);
    cublasLtMatmulPreference_t pref = nullptr;
    R1_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    const std::uint64_t ws = r.workspace_bytes;
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(r.lt, desc.h, q.b.h, q.a.h, q.c.h, q.c.h, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) return nullptr;
    return &r.gemm_algos.emplace(key, result.algo).first->second;
  };
  const auto fits = [&](const cublasLtMatmulAlgo_t* algo) {
    cublasLtMatmulHeuristicResult_t check{};
    if (!algo || cublasLtMatmulAlgoCheck(r.lt, desc.h, plan->b.h, plan->a.h, plan->c.h, plan->c.h, algo, &check) !=
                     CUBLAS_STATUS_SUCCESS || check.workspaceSize > r.workspace_bytes)
      return false;
    plan->algo = algo;
    plan->workspace = check.workspaceSize;
    return true;
  };
  const auto bucket = [](std::int64_t v) {
    std::int64_t b = 16;
    while (b < v) b *= 2;
    return b;
  };
  if (!fits(query(bucket(m), bucket(k)))) fits(query(m, k));
  return *plan;
}

// The descriptor of B's scale mode with the operands' scale pointers set (before a first query too: the
// descriptor a plan is checked with always carries its pointers), and the problem's plan.
std::pair<LtDesc*, const LtPlan*> lt_prepare(CudaResources& r, const Fp8Tensor& a, const Tensor& sa, const Fp8Tensor& b,
                                             const Tensor& sb, const Tensor& c, bool beta) {
  LtPlans& plans = lt_plans(r);
  const std::int32_t mode_first = b_scale_mode(b);
  LtDesc& desc = lt_desc(plans, mode_first);
  desc.set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(sb.raw()));
  desc.set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(sa.raw()));
  const cudaDataType_t tc = c.dtype() == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  return {&desc, &lt_plan(r, plans, desc, a.data.dim(0), b.data.dim(0), a.data.dim(1), tc, mode_first, beta)};
}

// C = alpha A B^T + beta C through cuBLASLt on a prepared plan, the scale pointers set again just before.
void lt_run(CudaResources& r, LtDesc& desc, const LtPlan& plan, const Fp8Tensor& a, const Tensor& sa, const Fp8Tensor& b,
            const Tensor& sb, const Tensor& c, float alpha, float beta, cudaStream_t stream, void* workspace,
            std::size_t workspace_bytes) {
  desc.set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(sb.raw()));
  desc.set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(sa.raw()));
  const cublasStatus_t s = cublasLtMatmul(r.lt, desc.h, &alpha, b.data.raw(), plan.b.h, a.data.raw(), plan.a.h, &beta,
                                          c.raw(), plan.c.h, c.raw(), plan.c.h, plan.algo, workspace, workspace_bytes, stream);
  if (s != CUBLAS_STATUS_SUCCESS)
    R1_FAIL(cuda, "cublasLtMatmul fp8 M=", a.data.dim(0), " N=", b.data.dim(0), " K=", a.data.dim(1), ": ",
            cublasLtGetStatusString(s));
}

// C = alpha A B^T + beta C through cuBLASLt, A and B with their scales in the GEMM's layout (sa, sb), on the
// context's stream; false where cuBLASLt has no algorithm for the problem.
bool lt_fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Tensor& sa, const Fp8Tensor& b, const Tensor& sb,
                 const Tensor& c, float alpha, float beta) {
  CudaResources& r = ctx.cuda_resources();
  const auto [desc, plan] = lt_prepare(r, a, sa, b, sb, c, beta != 0.0f);
  if (!plan->algo) return false;
  lt_run(r, *desc, *plan, a, sa, b, sb, c, alpha, beta, r.stream, r.workspace, r.workspace_bytes);
  return true;
}

const Tensor& gemm_scales(const Context& ctx, const Fp8Tensor& q, Tensor& relaid) {
  if (q.gemm_layout) return q.scale_inv;
  relaid = to_gemm_layout(ctx, q).scale_inv;
  return relaid;
}

void plain_fp8_gemm(const Context& ctx, const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c, const Fp8GemmOptions& opt) {
  const std::int64_t m = a.data.dim(0), n = b.data.dim(0), k = a.data.dim(1);
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(m));
  with_float_type(c.dtype(), "fp8_gemm", [&](auto tag) {
    using T = decltype(tag);
    fp8_gemm_plain_kernel<<<grid, kThreads, 0, ctx.cuda_resources().stream>>>(
        m, n, k, b.block_rows, a.data.data<f8e4m3>(), a.scale_inv.data<float>(), fp8_scale_index(a),
        b.data.data<f8e4m3>(), b.scale_inv.data<float>(), fp8_scale_index(b), opt.alpha, opt.beta, c.data<T>());
  });
  R1_CUDA_LAUNCHED("fp8_gemm (plain)");
}

bool aligned16(const Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.raw()) % 16 == 0; }

// cuBLASLt's block-scaled FP8 GEMM takes K only in multiples of 16 (kFp8LtInner) and M (the rows of A: tokens,
// an expert's among them) only in multiples of 4 (measured on an H100 with cuBLAS 13: every M % 4 != 0 had no
// algorithm), the rows its VEC128 scales are laid out for (ld = fp8_round4(M)). q's data zero-padded to
// [rows, k16]: same scales, same tile sums; the padded rows' results are discarded.
constexpr std::int64_t kFp8LtRows = 4;
Fp8Tensor padded(const Context& ctx, const Fp8Tensor& q, std::int64_t rows, std::int64_t k16) {
  Fp8Tensor p = q;
  const std::int64_t r = q.data.dim(0), k = q.data.dim(1);
  p.data = ctx.zeros({rows, k16}, DType::f8e4m3);
  R1_CUDA(cudaMemcpy2DAsync(p.data.raw(), static_cast<std::size_t>(k16), q.data.raw(), static_cast<std::size_t>(k),
                            static_cast<std::size_t>(k), static_cast<std::size_t>(r), cudaMemcpyDeviceToDevice,
                            ctx.cuda_resources().stream));
  return p;
}

// dst = src, device tensors of one shape and dtype, on the context's stream.
void device_copy(const Context& ctx, const Tensor& src, const Tensor& dst) {
  R1_CHECK(src.dtype() == dst.dtype() && src.numel() == dst.numel(), "fp8_gemm: copy ", src.str(), " -> ", dst.str());
  R1_CUDA(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice, ctx.cuda_resources().stream));
}

// Whether an expert's GEMM can go to a side stream as it is: scales in the GEMM's layout, nothing to pad.
bool lane_ready(const Fp8Tensor& a, const Fp8Tensor& b, const Tensor& c) {
  return a.gemm_layout && b.gemm_layout && a.data.dim(1) % kFp8LtInner == 0 && a.data.dim(0) % kFp8LtRows == 0 &&
         aligned16(a.data) && aligned16(b.data) && aligned16(c);
}
}  // namespace

void fp8_gemm(const Context& ctx, const Fp8Tensor& a_in, const Fp8Tensor& b_in, const Tensor& c, const Fp8GemmOptions& opt) {
  const std::int64_t m = a_in.data.dim(0), m4 = fp8_round4(m), n = b_in.data.dim(0);
  const std::int64_t k = a_in.data.dim(1), k16 = (k + kFp8LtInner - 1) / kFp8LtInner * kFp8LtInner;
  const bool pad_k = k != k16 || !aligned16(a_in.data) || !aligned16(b_in.data);
  const Fp8Tensor a = pad_k || m4 != m ? padded(ctx, a_in, m4, k16) : a_in;  // [m4, k16]
  const Fp8Tensor b = pad_k ? padded(ctx, b_in, n, k16) : b_in;
  Fp8Tensor a_m = a;  // A's own m rows (what the scales describe, and what the plain kernel reads)
  a_m.data = a.data.slice(0, m);
  if (aligned16(c)) {
    Tensor relaid_a, relaid_b;
    const Tensor& sa = gemm_scales(ctx, a_m, relaid_a);  // laid out for fp8_round4(m) = m4 rows
    const Tensor& sb = gemm_scales(ctx, b, relaid_b);
    // cuBLASLt writes m4 rows: into c itself, or (m not a multiple of 4) into a scratch whose first m rows go to c.
    const Tensor out = m4 == m ? c : ctx.empty({m4, n}, c.dtype());
    if (m4 != m && opt.beta != 0.0f) device_copy(ctx, c, out.slice(0, m));
    if (lt_fp8_gemm(ctx, a, sa, b, sb, out, opt.alpha, opt.beta)) {
      if (m4 != m) device_copy(ctx, out.slice(0, m), c);
      return;
    }
    // Some builds of cuBLASLt take these scale modes only without C: then C = alpha A B^T goes to a scratch
    // tensor first and is added.
    if (opt.beta != 0.0f) {
      const Tensor t = ctx.empty({m4, n}, c.dtype());
      if (lt_fp8_gemm(ctx, a, sa, b, sb, t, opt.alpha, 0.0f)) {
        if (opt.beta != 1.0f) scale(ctx, opt.beta, c);
        return axpy(ctx, 1.0f, t.slice(0, m), c);
      }
    }
  }
  ++plain_calls;
  plain_fp8_gemm(ctx, a_m, b, c, opt);
}

void fp8_gemm_experts(const Context& ctx, std::span<const Fp8Tensor> a, std::span<const Fp8Tensor> b,
                      std::span<const Tensor> c, std::span<const std::size_t> busy, const Fp8GemmOptions& opt) {
  CudaResources& r = ctx.cuda_resources();
  struct Side {
    std::size_t e;
    LtDesc* desc;
    const LtPlan* plan;
  };
  std::vector<Side> side;  // the experts cuBLASLt takes as they are, within a side stream's workspace
  for (std::size_t e : busy) {
    if (lane_ready(a[e], b[e], c[e])) {
      const auto [desc, plan] = lt_prepare(r, a[e], a[e].scale_inv, b[e], b[e].scale_inv, c[e], opt.beta != 0.0f);
      if (plan->algo && plan->workspace <= CudaResources::kSideWorkspaceBytes) {
        side.push_back({e, desc, plan});
        continue;
      }
    }
    cuda::fp8_gemm(ctx, a[e], b[e], c[e], opt);
  }
  const int lanes = r.fork(static_cast<int>(std::min<std::size_t>(side.size(), CudaResources::kSideStreams)));
  for (std::size_t i = 0; i < side.size(); ++i) {
    const std::size_t e = side[i].e;
    cudaStream_t stream = r.stream;
    void* workspace = r.workspace;
    std::size_t workspace_bytes = r.workspace_bytes;
    if (lanes > 0) {
      const std::size_t lane = i % static_cast<std::size_t>(lanes);
      stream = r.side_streams[lane];
      workspace = r.side_workspaces[lane];
      workspace_bytes = CudaResources::kSideWorkspaceBytes;
    }
    lt_run(r, *side[i].desc, *side[i].plan, a[e], a[e].scale_inv, b[e], b[e].scale_inv, c[e], opt.alpha, opt.beta,
           stream, workspace, workspace_bytes);
  }
  r.join(lanes);
}

std::int64_t fp8_gemm_plain_calls() { return plain_calls.load(); }

}  // namespace r1::kernels::cuda
