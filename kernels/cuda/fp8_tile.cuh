// Device helper of the CUDA FP8 quantisations (cuda/fp8.cu, the fused SwiGLU in cuda/swiglu.cu): a tile's
// scale_inv from the max-abs its thread block has gathered, one value per thread.
#pragma once
#include "kernels/fp8.hpp"

namespace r1::kernels::cuda {

// Every thread of a Threads-thread block (a multiple of 32) passes its partial max-abs; every thread gets the
// block's scale_inv (fp8_scale_inv of the block's max-abs). Contains a __syncthreads: all threads must call it.
template <int Threads>
__device__ float fp8_block_scale_inv(float amax, bool pow2) {
  __shared__ float warp_max[Threads / 32];
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = 0.0f;
  for (int w = 0; w < Threads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  return fp8_scale_inv(amax, pow2);
}

}  // namespace r1::kernels::cuda
