// The caching allocator over real cudaMalloc, and host<->device copies.
#include <gtest/gtest.h>

#include "kernels/context.hpp"
#include "kernels/cuda/resources.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

TEST(CudaAllocator, SteadyStateMakesNoNewCudaMalloc) {
  ASSERT_GT(Context::cuda_device_count(), 0) << "gpu test without a visible CUDA device";
  const Context ctx = Context::cuda(0);
  auto& alloc = *ctx.cuda_resources().allocator;
  const auto step = [&] {
    Tensor a = ctx.empty({1024, 1024}, DType::bf16);
    Tensor b = ctx.empty({333}, DType::f32);
    Tensor c = ctx.empty({7, 5000}, DType::f32);
  };
  step();  // the first step fills the cache
  const std::size_t raw = alloc.stats().raw_allocs;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(alloc.stats().raw_allocs, raw);
}

TEST(CudaAllocator, HostDeviceRoundTripIsExact) {
  ASSERT_GT(Context::cuda_device_count(), 0) << "gpu test without a visible CUDA device";
  const Context ctx = Context::cuda(0);
  const Tensor h = test::random_tensor({3, 1001}, DType::bf16, 12);
  const Tensor d = ctx.to_here(h);
  EXPECT_FALSE(d.on_host());
  EXPECT_EQ(d.device(), 0);
  Tensor back = Tensor::host(h.shape(), h.dtype());
  copy(back, d.slice(0, 3));
  EXPECT_EQ(std::memcmp(back.raw(), h.raw(), h.nbytes()), 0);
}

TEST(CudaAllocator, OutOfMemoryIsAClearError) {
  ASSERT_GT(Context::cuda_device_count(), 0) << "gpu test without a visible CUDA device";
  const Context ctx = Context::cuda(0);
  try {
    Tensor t = ctx.empty({std::int64_t{1} << 40}, DType::f32);  // 4 TiB
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("MiB free of"), std::string::npos) << e.what();
  }
}
