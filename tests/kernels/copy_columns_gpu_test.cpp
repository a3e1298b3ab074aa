// copy_columns: CUDA against the CPU reference, bit-exact (copies move bits; group sums add in the same
// order in f32 on both backends). Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

#include "kernels/copy_columns.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

TEST(CopyColumnsParity, CopyBroadcastAndSumAreBitExact) {
  const Context cpu = Context::cpu(), dev = test::gpu_context();
  struct Case {
    Shape src, dst;
    std::int64_t src_col, dst_col, width;
  };
  // Bench-like MLA shapes: kv [T, H, 128 + 128] split into k_nope and v; k_pe [T, 64] broadcast into
  // k [T, H, 192]; dk's rope slice summed over heads.
  const Case cases[] = {{{1000, 16, 256}, {1000, 16, 192}, 0, 0, 128},
                        {{1000, 16, 256}, {1000, 16, 128}, 128, 0, 128},
                        {{1000, 64}, {1000, 16, 192}, 0, 128, 64},
                        {{1000, 16, 192}, {1000, 64}, 128, 0, 64},
                        {{37, 5, 13}, {37, 1, 9}, 3, 2, 7}};
  for (DType dt : {DType::f32, DType::bf16}) {
    std::uint32_t stream = 1;
    for (const Case& c : cases) {
      const Tensor src = test::random_tensor(c.src, dt, stream++), dst = test::random_tensor(c.dst, dt, stream++);
      const Tensor dsrc = dev.to_here(src), ddst = dev.to_here(dst);
      kernels::copy_columns(cpu, src, c.src_col, dst, c.dst_col, c.width);
      kernels::copy_columns(dev, dsrc, c.src_col, ddst, c.dst_col, c.width);
      EXPECT_EQ(std::memcmp(test::to_host(ddst).raw(), dst.raw(), dst.nbytes()), 0)
          << c.src.str() << " -> " << c.dst.str() << " " << dtype_name(dt);
    }
  }
}
