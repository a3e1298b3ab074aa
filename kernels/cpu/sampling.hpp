// CPU reference of kernels/sampling.hpp: what its dispatch (kernels/sampling.cpp) calls on a CPU context.
#pragma once
#include <vector>

#include "kernels/sampling.hpp"

namespace r1::kernels::cpu {

// One row of V drawable logits; `scratch` is reused between calls.
SampledToken sample_row(const float* logits, std::int64_t V, const SampleOptions& o, double u,
                        std::vector<std::int32_t>& scratch);
void sample_rows(const Tensor& logits, const Tensor& uniforms, const SampleOptions& o, const Tensor& tokens,
                 const Tensor& logprobs, const Tensor& entropies);

}  // namespace r1::kernels::cpu
