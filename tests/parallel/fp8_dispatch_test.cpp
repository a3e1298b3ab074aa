// The FP8 expert dispatch (model/token_dispatcher.hpp, precision fp8): tokens quantised in 1 x 128 tiles before
// the all-to-all arrive as exactly the quantisation of the tokens a BF16 dispatch delivers (a row's tiles are its
// own), in the same expert-major order, for about half the bytes on the wire (mpi, every rank one EP group).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "kernels/elementwise.hpp"
#include "kernels/fp8.hpp"
#include "kernels/test_util.hpp"
#include "model/token_dispatcher.hpp"
#include "parallel/comm.hpp"
#include "support/world.hpp"

using namespace r1;
using test::world_rank;
using test::world_size;

namespace {
const kernels::Context kCpu = kernels::Context::cpu();

// Rank r's expert-sorted offsets: expert e gets (r + 3 e) % 7 rows (some experts none).
std::vector<std::int64_t> offsets_of(int rank, std::int64_t experts) {
  std::vector<std::int64_t> o{0};
  for (std::int64_t e = 0; e < experts; ++e) o.push_back(o.back() + (rank + 3 * e) % 7);
  return o;
}

kernels::Fp8Tensor quantized(const Tensor& x) {
  kernels::Fp8Tensor q = kernels::make_fp8(kCpu, x.dim(0), x.dim(1), 1, 128);
  kernels::quantize_fp8(kCpu, x, q);
  return q;
}
}  // namespace

TEST(Fp8Dispatch, TheReceivedTilesAreTheQuantisedBf16RowsForHalfTheBytes) {
  const int n = world_size();
  std::vector<int> all(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) all[static_cast<std::size_t>(r)] = r;
  auto ep = parallel::make_communicator(parallel::Backend::mpi, "ep", all, kCpu, 60);
  constexpr std::int64_t kDim = 320;  // two whole 128-tiles and a partial one
  const std::int64_t experts = 4 * n;
  for (bool overlap : {true, false}) {
    const TokenDispatcher bf16(*ep, experts, overlap), fp8(*ep, experts, overlap);
    const auto offsets = offsets_of(world_rank(), experts);
    const Tensor rows = test::random_tensor({offsets.back(), kDim}, DType::bf16, static_cast<std::uint32_t>(world_rank()));
    const TokenDispatcher::Route route = bf16.route(kCpu, offsets);

    const Tensor got_bf16 = bf16.dispatch(kCpu, route, rows);
    const kernels::Fp8Tensor got_fp8 = fp8.dispatch(kCpu, route, quantized(rows));
    const kernels::Fp8Tensor want = quantized(got_bf16);
    ASSERT_EQ(got_fp8.data.shape(), want.data.shape());
    EXPECT_EQ(std::memcmp(got_fp8.data.raw(), want.data.raw(), want.data.nbytes()), 0) << "E4M3 bytes, rank " << world_rank();
    EXPECT_EQ(std::memcmp(got_fp8.scale_inv.raw(), want.scale_inv.raw(), want.scale_inv.nbytes()), 0)
        << "tile scales, rank " << world_rank();

    // Bytes to the other ranks: BF16 2 D per row, FP8 D + 4 per 128-tile (0.52 of BF16 at D = 320).
    std::int64_t to_others = 0;
    for (int p = 0; p < n; ++p)
      if (p != world_rank()) to_others += route.send_rows[static_cast<std::size_t>(p)];
    EXPECT_EQ(bf16.traffic().dispatch_bytes, to_others * kDim * 2);
    EXPECT_EQ(fp8.traffic().dispatch_bytes, to_others * (kDim + 4 * 3));
    EXPECT_GT(to_others, 0);
    EXPECT_LT(static_cast<double>(fp8.traffic().dispatch_bytes), 0.55 * static_cast<double>(bf16.traffic().dispatch_bytes));
    if (world_rank() == 0 && overlap)
      std::printf("  dispatch bytes to other ranks, rank 0: bf16 %lld, fp8 %lld (%.3f)\n",
                  static_cast<long long>(bf16.traffic().dispatch_bytes), static_cast<long long>(fp8.traffic().dispatch_bytes),
                  static_cast<double>(fp8.traffic().dispatch_bytes) / static_cast<double>(bf16.traffic().dispatch_bytes));
  }
}
