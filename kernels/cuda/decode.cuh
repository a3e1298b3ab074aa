// Device helpers of the decode attention kernels (cuda/mla_decode.cu, cuda/gqa_decode.cu).
#pragma once
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

// Online softmax over tiles of scores (the decode kernels): folds the tile p[0, m) (shared memory) into the
// running max and sum, and returns alpha = exp(old max - new max) (0 on the first tile, run_max = -inf), by
// which the caller rescales its accumulators. Every warp folds the same way (same lanes, same order), so the
// values agree across the block without another barrier.
__device__ __forceinline__ float fold_scores(const float* p, int m, float& run_max, float& run_sum) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  float tmax = -INFINITY;
  for (int j = lane; j < m; j += 32) tmax = fmaxf(tmax, p[j]);
  const float new_max = fmaxf(run_max, warp_max(tmax));
  float tsum = 0.0f;
  for (int j = lane; j < m; j += 32) tsum += __expf(p[j] - new_max);
  const float alpha = __expf(run_max - new_max);
  run_sum = run_sum * alpha + warp_sum(tsum);
  run_max = new_max;
  return alpha;
}

}  // namespace r1::kernels::cuda
