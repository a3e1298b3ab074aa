// The loop over experts: backend-neutral, since kernels::gemm dispatches each group itself.
#include "kernels/grouped_gemm.hpp"

#include "kernels/cuda/gemm.hpp"

namespace r1::kernels {

namespace {
Tensor expert_matrix(const Tensor& t, std::int64_t e) { return t.slice(e, e + 1).view({t.dim(1), t.dim(2)}); }
}  // namespace

bool one_launch(const Context& ctx, const Tensor& a, const Tensor& c, std::span<const std::int64_t> offsets,
                const GemmOptions& opt) {
  if (!ctx.is_cuda() || c.rank() != 2 || a.dtype() != c.dtype() || opt.trans_a || opt.allow_tf32) return false;
  std::int64_t busy = 0;
  for (std::size_t x = 0; x + 1 < offsets.size(); ++x) busy += offsets[x + 1] > offsets[x];
  return busy >= 2 && a.dim(0) <= kOneLaunchMaxRowsPerExpert * busy;
}

void grouped_gemm(const Context& ctx, const Tensor& a, const Tensor& b, const Tensor& c,
                  std::span<const std::int64_t> offsets, const GemmOptions& opt) {
  R1_REQUIRE(a.defined() && b.defined() && c.defined(), "grouped_gemm: undefined operand");
  const std::string shapes = detail::concat(" (A ", a.str(), ", B ", b.str(), ", C ", c.str(), ")");
  const bool per_expert_c = c.rank() == 3;
  R1_REQUIRE(a.rank() == 2 && (per_expert_c ? b.rank() == 2 : b.rank() == 3 && c.rank() == 2),
             "grouped_gemm: A and one of B (forward, dgrad) or C (wgrad) are row-grouped 2-D, the other 3-D [E, ...]",
             shapes);
  R1_REQUIRE(!per_expert_c || (opt.trans_a && !opt.trans_b),
             "grouped_gemm: a per-expert C (weight gradient) contracts over the grouped rows: needs trans_a and not "
             "trans_b", shapes);
  R1_REQUIRE(per_expert_c || !opt.trans_a, "grouped_gemm: the grouped rows of A are C's rows: trans_a is not allowed",
             shapes);
  const std::int64_t e = per_expert_c ? c.dim(0) : b.dim(0);
  R1_REQUIRE(static_cast<std::int64_t>(offsets.size()) == e + 1 && offsets.front() == 0 && offsets.back() == a.dim(0),
             "grouped_gemm: offsets must hold E+1 = ", e + 1, " values from 0 to the ", a.dim(0),
             " rows of A, got ", offsets.size(), " values", shapes);
  for (std::int64_t x = 0; x < e; ++x)
    R1_REQUIRE(offsets[x] <= offsets[x + 1], "grouped_gemm: offsets decrease at expert ", x, ": ", offsets[x], " > ",
               offsets[x + 1], shapes);
  const Tensor& grouped2 = per_expert_c ? b : c;
  R1_REQUIRE(grouped2.dim(0) == a.dim(0), "grouped_gemm: A and ", per_expert_c ? "B" : "C",
             " must have the same number of rows", shapes);
  if (e > 0)  // the whole problem against expert 0's matrix: dtypes and the dimensions other than the groups
    check_gemm(a, per_expert_c ? b : expert_matrix(b, 0), per_expert_c ? expert_matrix(c, 0) : c, opt);
#if defined(R1HPC_HAVE_CUDA)
  if (one_launch(ctx, a, c, offsets, opt)) return cuda::grouped_gemm_one_launch(ctx, a, b, c, offsets, opt);
#endif
  for (std::int64_t x = 0; x < e; ++x) {
    const std::int64_t lo = offsets[x], hi = offsets[x + 1];
    if (per_expert_c) {
      if (lo == hi && opt.beta == 1.0f) continue;  // an empty sum added to C_e
      gemm(ctx, a.slice(lo, hi), b.slice(lo, hi), expert_matrix(c, x), opt);
    } else if (lo < hi) {
      gemm(ctx, a.slice(lo, hi), expert_matrix(b, x), c.slice(lo, hi), opt);
    }
  }
}

}  // namespace r1::kernels
