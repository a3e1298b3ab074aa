// CPU reference GEMM: OpenBLAS sgemm per batch; bf16 operands are widened to f32 first.
#include <cblas.h>

#include <vector>

#include "kernels/cpu/gemm.hpp"

namespace r1::kernels::cpu {

namespace {
// A float view of `n` elements at `base` (+ offset); converts bf16 into `scratch`.
const float* as_f32(const Tensor& t, std::int64_t offset, std::int64_t n, std::vector<float>& scratch) {
  if (t.dtype() == DType::f32) return t.data<float>() + offset;
  scratch.resize(static_cast<std::size_t>(n));
  const bf16* p = t.data<bf16>() + offset;
  // Serial on purpose: an OpenMP team spinning beside OpenBLAS's own threads slows sgemm ~50x.
  for (std::int64_t i = 0; i < n; ++i) scratch[i] = to_float(p[i]);
  return scratch.data();
}
}  // namespace

void gemm(const Context&, const GemmProblem& p, const Tensor& a, const Tensor& b, const Tensor& c,
          const GemmOptions& opt) {
  std::vector<float> sa, sb, sc;
  const std::int64_t na = p.m * p.k, nb = p.k * p.n, nc = p.m * p.n;
  for (std::int64_t i = 0; i < p.batch; ++i) {
    const float* pa = as_f32(a, i * p.stride_a, na, sa);
    const float* pb = as_f32(b, i * p.stride_b, nb, sb);
    float* pc;
    if (c.dtype() == DType::f32) {
      pc = c.data<float>() + i * p.stride_c;
    } else {
      sc.assign(static_cast<std::size_t>(nc), 0.0f);
      if (opt.beta != 0.0f) as_f32(c, i * p.stride_c, nc, sc);
      pc = sc.data();
    }
    cblas_sgemm(CblasRowMajor, opt.trans_a ? CblasTrans : CblasNoTrans, opt.trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(p.m), static_cast<blasint>(p.n), static_cast<blasint>(p.k), opt.alpha, pa,
                static_cast<blasint>(opt.trans_a ? p.m : p.k), pb, static_cast<blasint>(opt.trans_b ? p.k : p.n),
                opt.beta, pc, static_cast<blasint>(p.n));
    if (c.dtype() == DType::bf16) {
      bf16* out = c.data<bf16>() + i * p.stride_c;
      for (std::int64_t j = 0; j < nc; ++j) out[j] = to_bf16(pc[j]);
    }
  }
}

}  // namespace r1::kernels::cpu
