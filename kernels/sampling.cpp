#include "kernels/sampling.hpp"

#include <cmath>

#include "kernels/cpu/sampling.hpp"
#include "kernels/cuda/sampling.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

void validate(const SampleOptions& o) {
  R1_REQUIRE(std::isfinite(o.temperature) && o.temperature >= 0.0f, "sampling: temperature ", o.temperature,
             " must be >= 0 (0 = greedy)");
  R1_REQUIRE(o.top_p > 0.0f && o.top_p <= 1.0f, "sampling: top_p ", o.top_p, " must be in (0, 1]");
  R1_REQUIRE(o.top_k >= 0, "sampling: top_k ", o.top_k, " must be >= 0 (0 = off)");
  R1_REQUIRE(o.vocab_limit >= 0, "sampling: vocab_limit ", o.vocab_limit, " must be >= 0 (0 = the whole row)");
}

void sample_rows(const Context& ctx, const Tensor& logits, const Tensor& uniforms, const SampleOptions& o,
                 const Tensor& tokens, const Tensor& logprobs, const Tensor& entropies) {
  const char* op = "sample_rows";
  validate(o);
  require_all_here(ctx, op, {{"logits", &logits}, {"uniforms", &uniforms}, {"tokens", &tokens},
                             {"logprobs", &logprobs}, {"entropies", &entropies}});
  R1_REQUIRE(logits.rank() == 2 && logits.dtype() == DType::f32 && logits.dim(1) >= 1, op,
             ": logits must be f32 [rows, vocab], got ", logits.str());
  const std::int64_t B = logits.dim(0);
  R1_REQUIRE(uniforms.numel() == B && uniforms.dtype() == DType::f64, op, ": uniforms must be f64 [", B, "], got ",
             uniforms.str());
  R1_REQUIRE(tokens.numel() == B && tokens.dtype() == DType::i32, op, ": tokens must be i32 [", B, "], got ", tokens.str());
  for (const Tensor* t : {&logprobs, &entropies})
    R1_REQUIRE(t->numel() == B && t->dtype() == DType::f32, op, ": logprobs and entropies must be f32 [", B, "], got ",
               t->str());
  if (B == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::sample_rows(ctx, logits, uniforms, o, tokens, logprobs, entropies);
#endif
  cpu::sample_rows(logits, uniforms, o, tokens, logprobs, entropies);
}

}  // namespace r1::kernels
