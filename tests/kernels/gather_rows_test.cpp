// gather_rows on the CPU: rows copied bit for bit against a naive loop (f32 and bf16, rank 2 and 3, repeated
// rows, no rows), and argument checks.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/gather_rows.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();

Tensor host_ints(const std::vector<std::int32_t>& v) {
  Tensor t = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::i32);
  std::copy(v.begin(), v.end(), t.data<std::int32_t>());
  return t;
}
}  // namespace

TEST(GatherRows, CopiesTheListedRowsExactly) {
  struct Case {
    Shape src;
    std::vector<std::int32_t> rows;
  };
  const Case cases[] = {
      {{7, 5}, {3, 0, 6, 3}},     // repeated rows, odd width
      {{4, 6, 8}, {2, 1}},        // a KV cache: [slots, L, width] rows
      {{3, 16}, {0, 1, 2}},       // every row, in order
      {{5, 9}, {}},               // no rows
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    std::uint32_t stream = 1;
    for (const Case& c : cases) {
      const Tensor src = test::random_tensor(c.src, dt, stream++);
      std::vector<std::int64_t> dims{static_cast<std::int64_t>(c.rows.size())};
      for (int d = 1; d < c.src.rank(); ++d) dims.push_back(c.src[d]);
      const Shape shape(dims.begin(), dims.end());
      const Tensor dst = Tensor::host(shape, dt), want = Tensor::host(shape, dt);
      const std::size_t row_bytes = dtype_size(dt) * static_cast<std::size_t>(c.src.numel() / c.src[0]);
      for (std::size_t i = 0; i < c.rows.size(); ++i)
        for (std::size_t b = 0; b < row_bytes; ++b)
          static_cast<char*>(want.raw())[i * row_bytes + b] =
              static_cast<const char*>(src.raw())[static_cast<std::size_t>(c.rows[i]) * row_bytes + b];
      kernels::gather_rows(cpu, src, host_ints(c.rows), dst);
      EXPECT_EQ(std::memcmp(dst.raw(), want.raw(), want.nbytes()), 0) << c.src.str() << " " << dtype_name(dt);
    }
  }
}

TEST(GatherRows, RejectsBadArguments) {
  const Tensor src = test::random_tensor({4, 2, 6}, DType::f32, 1);
  const Tensor two = host_ints({1, 3});
  EXPECT_THROW(kernels::gather_rows(cpu, src, host_ints({1, 4}), Tensor::host({2, 2, 6}, DType::f32)), Error);  // row 4
  EXPECT_THROW(kernels::gather_rows(cpu, src, host_ints({-1, 0}), Tensor::host({2, 2, 6}, DType::f32)), Error);  // row -1
  EXPECT_THROW(kernels::gather_rows(cpu, src, two, Tensor::host({2, 2, 6}, DType::bf16)), Error);  // dtypes
  EXPECT_THROW(kernels::gather_rows(cpu, src, two, Tensor::host({2, 3, 6}, DType::f32)), Error);   // row shape
  EXPECT_THROW(kernels::gather_rows(cpu, src, two, Tensor::host({2, 12}, DType::f32)), Error);     // row rank
  EXPECT_THROW(kernels::gather_rows(cpu, src, two, Tensor::host({3, 2, 6}, DType::f32)), Error);   // rows count
}
