// Launch geometry shared by the CUDA kernels.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/context.hpp"
#include "kernels/cuda/resources.hpp"

namespace r1::kernels::cuda {

struct Launch {
  unsigned grid;
  unsigned block;
  cudaStream_t stream;
};

// Grid-stride loops: enough blocks to fill every SM several times over, never more than the work needs.
inline Launch elementwise_launch(const Context& ctx, std::int64_t n, unsigned block = 256) {
  const CudaResources& r = ctx.cuda_resources();
  const std::int64_t needed = (n + block - 1) / block;
  const std::int64_t cap = static_cast<std::int64_t>(r.sm_count) * 8;
  return {static_cast<unsigned>(std::max<std::int64_t>(1, std::min(needed, cap))), block, r.stream};
}

}  // namespace r1::kernels::cuda
