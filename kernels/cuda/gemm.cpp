// CUDA GEMM through cuBLASLt. Row-major C = op(A) op(B) is computed as the column-major product
// C^T = op(B)^T op(A)^T, so B is cuBLASLt's first operand. Algorithm choices are cached per problem.
#include "kernels/cuda/gemm.hpp"

#include <cstdint>
#include <vector>

#include "kernels/cuda/resources.hpp"

namespace r1::kernels::cuda {

namespace {
cudaDataType_t lt_type(DType t) { return t == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F; }

// Largest power of two (<= 256) dividing the address: cuBLASLt picks kernels by operand alignment.
int alignment(const void* p) {
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  int a = 256;
  while (a > 1 && (v % a) != 0) a /= 2;
  return a;
}

struct Layout {
  cublasLtMatrixLayout_t h = nullptr;
  Layout(cudaDataType_t t, std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t batch,
         std::int64_t stride) {
    R1_CUBLAS(cublasLtMatrixLayoutCreate(&h, t, rows, cols, ld));
    if (batch > 1) {
      const int32_t b = static_cast<int32_t>(batch);
      R1_CUBLAS(cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b));
      R1_CUBLAS(cublasLtMatrixLayoutSetAttribute(h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(h); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};
}  // namespace

void gemm(const Context& ctx, const GemmProblem& p0, const Tensor& a, const Tensor& b, const Tensor& c,
          const GemmOptions& opt) {
  CudaResources& r = ctx.cuda_resources();
  GemmProblem p = p0;
  // A batched, untransposed A against a shared B is one tall GEMM: fold the batch into M.
  if (p.batch > 1 && p.stride_b == 0 && !opt.trans_a && p.stride_a == p.m * p.k) {
    p.m *= p.batch;
    p.batch = 1;
  }
  const cudaDataType_t tab = lt_type(a.dtype()), tc = lt_type(c.dtype());
  const cublasComputeType_t compute =
      (a.dtype() == DType::f32 && opt.allow_tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  cublasLtMatmulDesc_t desc = nullptr;
  R1_CUBLAS(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F));
  const cublasOperation_t op_first = opt.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;   // B
  const cublasOperation_t op_second = opt.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // A
  R1_CUBLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
  R1_CUBLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));

  // Column-major views: B is (N x K) or, transposed, stored (K x N); A is (K x M) or stored (M x K).
  Layout lb(tab, opt.trans_b ? p.k : p.n, opt.trans_b ? p.n : p.k, opt.trans_b ? p.k : p.n, p.batch, p.stride_b);
  Layout la(tab, opt.trans_a ? p.m : p.k, opt.trans_a ? p.k : p.m, opt.trans_a ? p.m : p.k, p.batch, p.stride_a);
  Layout lc(tc, p.n, p.m, p.n, p.batch, p.stride_c);

  const int al_a = alignment(a.raw()), al_b = alignment(b.raw()), al_c = alignment(c.raw());
  const auto key = std::make_tuple(static_cast<int>(tab), static_cast<int>(tc), static_cast<int>(compute),
                                   (opt.trans_a ? 1 : 0) | (opt.trans_b ? 2 : 0) | (opt.beta != 0.0f ? 4 : 0),
                                   al_a | (al_b << 9) | (al_c << 18), p.m, p.n, p.k, p.batch, p.stride_a,
                                   p.stride_b, 0);
  auto it = r.gemm_algos.find(key);
  if (it == r.gemm_algos.end()) {
    cublasLtMatmulPreference_t pref = nullptr;
    R1_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    const std::uint64_t ws = r.workspace_bytes;
    const std::uint32_t ua = al_a, ub = al_b, uc = al_c;
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ub, sizeof ub));
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ua, sizeof ua));
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &uc, sizeof uc));
    R1_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &uc, sizeof uc));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(r.lt, desc, lb.h, la.h, lc.h, lc.h, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
      cublasLtMatmulDescDestroy(desc);
      R1_FAIL(cuda, "cuBLASLt has no algorithm for gemm M=", p.m, " N=", p.n, " K=", p.k, " batch=", p.batch, " (A ",
              a.str(), ", B ", b.str(), ", C ", c.str(), "): ", cublasLtGetStatusString(s));
    }
    it = r.gemm_algos.emplace(key, result.algo).first;
  }
  const cublasStatus_t s = cublasLtMatmul(r.lt, desc, &opt.alpha, b.raw(), lb.h, a.raw(), la.h, &opt.beta, c.raw(),
                                          lc.h, c.raw(), lc.h, &it->second, r.workspace, r.workspace_bytes, r.stream);
  cublasLtMatmulDescDestroy(desc);
  if (s != CUBLAS_STATUS_SUCCESS)
    R1_FAIL(cuda, "cublasLtMatmul M=", p.m, " N=", p.n, " K=", p.k, ": ", cublasLtGetStatusString(s));
}

void grouped_gemm_one_launch(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& c,
                             std::span<const std::int64_t> offsets, const GemmOptions& opt) {
  CudaResources& r = ctx.cuda_resources();
  const std::int64_t n = c.dim(1), k = a.dim(1), elt = static_cast<std::int64_t>(dtype_size(a.dtype()));
  const std::int64_t experts = static_cast<std::int64_t>(offsets.size()) - 1;
  // One group per non-empty expert (group_size 1: the row counts differ). Column-major as in gemm():
  // C_g^T (N x rows) = op(B_e)^T A_g^T, so B_e is cuBLAS's first operand.
  std::vector<cublasOperation_t> ta, tb;
  std::vector<int> m_, n_, k_, lda, ldb, ldc, size;
  std::vector<float> alpha, beta;
  std::vector<const void*> pa, pb;
  std::vector<void*> pc;
  auto* const a0 = static_cast<const char*>(a.raw());
  auto* const b0 = static_cast<const char*>(b.raw());
  auto* const c0 = static_cast<char*>(c.raw());
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::int64_t lo = offsets[static_cast<std::size_t>(e)], rows = offsets[static_cast<std::size_t>(e) + 1] - lo;
    if (rows == 0) continue;
    ta.push_back(opt.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
    tb.push_back(CUBLAS_OP_N);
    m_.push_back(static_cast<int>(n));
    n_.push_back(static_cast<int>(rows));
    k_.push_back(static_cast<int>(k));
    lda.push_back(static_cast<int>(opt.trans_b ? k : n));
    ldb.push_back(static_cast<int>(k));
    ldc.push_back(static_cast<int>(n));
    size.push_back(1);
    alpha.push_back(opt.alpha);
    beta.push_back(opt.beta);
    pa.push_back(b0 + e * n * k * elt);
    pb.push_back(a0 + lo * k * elt);
    pc.push_back(c0 + lo * n * elt);
  }
  const auto groups = static_cast<std::int64_t>(size.size());
  if (groups == 0) return;
  // The operand pointers live on the device: one upload of [first operands | second | C].
  std::vector<const void*> ptrs(pa);
  ptrs.insert(ptrs.end(), pb.begin(), pb.end());
  ptrs.insert(ptrs.end(), pc.begin(), pc.end());
  const Tensor dev_ptrs = ctx.empty({3 * groups}, DType::i64);
  R1_CUDA(cudaMemcpyAsync(dev_ptrs.raw(), ptrs.data(), ptrs.size() * sizeof(void*), cudaMemcpyHostToDevice, r.stream));
  auto* const d = static_cast<void**>(dev_ptrs.raw());
  const cudaDataType_t t = lt_type(a.dtype());
  const cublasStatus_t st = cublasGemmGroupedBatchedEx(
      r.blas, ta.data(), tb.data(), m_.data(), n_.data(), k_.data(), alpha.data(), const_cast<const void* const*>(d), t,
      lda.data(), const_cast<const void* const*>(d + groups), t, ldb.data(), beta.data(), d + 2 * groups, t, ldc.data(),
      static_cast<int>(groups), size.data(), CUBLAS_COMPUTE_32F);
  if (st != CUBLAS_STATUS_SUCCESS)
    R1_FAIL(cuda, "cublasGemmGroupedBatchedEx over ", groups, " experts (A ", a.str(), ", B ", b.str(), ", C ", c.str(),
            "): ", cublasGetStatusString(st));
  // The pointer upload reads pageable host memory: it completes before cudaMemcpyAsync returns, so the
  // vectors may go; the device buffer returns to the stream-ordered cache after the launch.
}

}  // namespace r1::kernels::cuda
