#include "kernels/random.hpp"

#include "kernels/cpu/random.hpp"
#include "kernels/cuda/random.hpp"

namespace r1::kernels {

void fill_random(const Context& ctx, const Tensor& x, Distribution d, float a, float b, RngKey key,
                 std::uint64_t offset) {
  require_here(ctx, "fill_random", "x", x);
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::fill_random(ctx, x, d, a, b, key, offset);
#endif
  cpu::fill_random(x, d, a, b, key, offset);
}

}  // namespace r1::kernels
