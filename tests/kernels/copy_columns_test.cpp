// copy_columns on the CPU: copies, broadcasts and group sums against naive loops (f32 and bf16), the
// columns it must leave alone, the adjoint identities the MLA backward relies on, and argument checks.
#include <gtest/gtest.h>

#include "kernels/copy_columns.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();

// dst after copy_columns, by the definition, in double (dst's previous contents elsewhere).
std::vector<double> naive(const Tensor& src, std::int64_t sc, const Tensor& dst, std::int64_t dc, std::int64_t w) {
  const auto s = kernels::column_layout(src), d = kernels::column_layout(dst);
  std::vector<double> out(static_cast<std::size_t>(dst.numel()));
  for (std::int64_t i = 0; i < dst.numel(); ++i) out[i] = test::value(dst, i);
  for (std::int64_t r = 0; r < d.rows; ++r)
    for (std::int64_t g = 0; g < d.groups; ++g)
      for (std::int64_t j = 0; j < w; ++j) {
        double v = 0;
        if (d.groups == 1 && s.groups > 1)
          for (std::int64_t gs = 0; gs < s.groups; ++gs) v += test::value(src, (r * s.groups + gs) * s.cols + sc + j);
        else
          v = test::value(src, (r * s.groups + (s.groups == 1 ? 0 : g)) * s.cols + sc + j);
        out[(r * d.groups + g) * d.cols + dc + j] = v;
      }
  return out;
}

struct Case {
  Shape src, dst;
  std::int64_t src_col, dst_col, width;
};
}  // namespace

TEST(CopyColumns, MatchesTheDefinition) {
  const Case cases[] = {
      {{5, 3, 12}, {5, 3, 7}, 0, 0, 7},   // split: k_nope out of [k_nope | v]
      {{5, 3, 12}, {5, 3, 5}, 7, 0, 5},   // split: v
      {{5, 3, 7}, {5, 3, 12}, 2, 4, 5},   // join at an offset
      {{5, 9}, {5, 3, 12}, 6, 8, 3},      // broadcast one group (rank 2) to every group
      {{5, 3, 12}, {5, 4}, 8, 1, 3},      // sum over groups into rank 2
      {{5, 1, 6}, {5, 1, 6}, 1, 0, 5},    // one group each: a plain copy
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    std::uint32_t stream = 1;
    for (const Case& c : cases) {
      const Tensor src = test::random_tensor(c.src, dt, stream++), dst = test::random_tensor(c.dst, dt, stream++);
      const auto want = naive(src, c.src_col, dst, c.dst_col, c.width);
      kernels::copy_columns(cpu, src, c.src_col, dst, c.dst_col, c.width);
      // Copies are exact; a bf16 sum of 3 values rounds once.
      const double tol = dt == DType::bf16 ? 2e-2 : 1e-6;
      for (std::int64_t i = 0; i < dst.numel(); ++i)
        ASSERT_NEAR(test::value(dst, i), want[i], tol) << c.src.str() << " -> " << c.dst.str() << " at " << i;
    }
  }
}

// <broadcast(x), y> = <x, sum(y)>, and a split then a join gives back the original: the broadcast's
// adjoint is the group sum, the copy's is the copy back.
TEST(CopyColumns, BroadcastAndSumAreAdjoint) {
  const Tensor x = test::random_tensor({6, 4}, DType::f32, 11), y = test::random_tensor({6, 3, 10}, DType::f32, 12);
  Tensor bx = Tensor::host_zeros({6, 3, 10}, DType::f32), sy = Tensor::host_zeros({6, 4}, DType::f32);
  kernels::copy_columns(cpu, x, 0, bx, 6, 4);
  kernels::copy_columns(cpu, y, 6, sy, 0, 4);
  double lhs = 0, rhs = 0;
  for (std::int64_t i = 0; i < bx.numel(); ++i) lhs += test::value(bx, i) * test::value(y, i);
  for (std::int64_t i = 0; i < x.numel(); ++i) rhs += test::value(x, i) * test::value(sy, i);
  EXPECT_NEAR(lhs, rhs, 1e-4 * std::fabs(rhs) + 1e-5);

  Tensor a = Tensor::host({6, 3, 6}, DType::f32), b = Tensor::host({6, 3, 4}, DType::f32), back = Tensor::host(y.shape(), DType::f32);
  kernels::copy_columns(cpu, y, 0, a, 0, 6);
  kernels::copy_columns(cpu, y, 6, b, 0, 4);
  kernels::copy_columns(cpu, a, 0, back, 0, 6);
  kernels::copy_columns(cpu, b, 0, back, 6, 4);
  EXPECT_EQ(test::max_error(back, y), 0.0);
}

TEST(CopyColumns, RejectsBadArguments) {
  const Tensor src = Tensor::host({4, 2, 6}, DType::f32);
  EXPECT_THROW(kernels::copy_columns(cpu, src, 0, Tensor::host({4, 2, 6}, DType::bf16), 0, 3), Error);  // dtypes
  EXPECT_THROW(kernels::copy_columns(cpu, src, 0, Tensor::host({5, 2, 6}, DType::f32), 0, 3), Error);   // rows
  EXPECT_THROW(kernels::copy_columns(cpu, src, 0, Tensor::host({4, 3, 6}, DType::f32), 0, 3), Error);   // groups
  EXPECT_THROW(kernels::copy_columns(cpu, src, 4, Tensor::host({4, 2, 6}, DType::f32), 0, 3), Error);   // src cols
  EXPECT_THROW(kernels::copy_columns(cpu, src, 0, Tensor::host({4, 2, 6}, DType::f32), 4, 3), Error);   // dst cols
  EXPECT_THROW(kernels::copy_columns(cpu, src, 0, Tensor::host({48}, DType::f32), 0, 3), Error);        // rank
}
