// CUDA version of kernels/sampling.hpp for its dispatch, defined in cuda/sampling.cu (CUDA builds only).
#pragma once
#include "kernels/sampling.hpp"

namespace r1::kernels::cuda {

void sample_rows(const Context& ctx, const Tensor& logits, const Tensor& uniforms, const SampleOptions& o,
                 const Tensor& tokens, const Tensor& logprobs, const Tensor& entropies);

}  // namespace r1::kernels::cuda
