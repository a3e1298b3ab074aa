#include "generate/sampling.hpp"

#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/cpu/sampling.hpp"

namespace r1 {

namespace {
constexpr std::uint32_t kSamplingStream = 0x53414d50u;  // "SAMP": apart from every other use of the seed
}

void validate(const SamplingParams& p) {
  kernels::validate(sample_options(p));
  R1_REQUIRE(p.max_new_tokens >= 1, "sampling: max_new_tokens ", p.max_new_tokens, " must be >= 1");
  R1_REQUIRE(p.kv_block_size >= 0 && p.kv_cache_tokens >= 0 && p.prefill_chunk >= 0, "sampling: kv_block_size ",
             p.kv_block_size, ", kv_cache_tokens ", p.kv_cache_tokens, " and prefill_chunk ", p.prefill_chunk,
             " must be >= 0");
}

double sampling_uniform(std::uint64_t seed, std::uint64_t prompt, std::uint32_t sample, std::uint32_t position) {
  const Philox4 r = philox4x32_10(
      Philox4{{position, sample, static_cast<std::uint32_t>(prompt), static_cast<std::uint32_t>(prompt >> 32) ^ kSamplingStream}},
      static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 21) | (r.v[1] >> 11);
  return static_cast<double>(bits) * 0x1.0p-53;
}

kernels::SampleOptions sample_options(const SamplingParams& p) {
  return {.temperature = p.temperature, .top_p = p.top_p, .top_k = p.top_k, .vocab_limit = p.vocab_limit};
}

SampledToken sample_token(std::span<const float> logits, const SamplingParams& p, double u,
                          std::vector<std::int32_t>& scratch) {
  return kernels::cpu::sample_row(logits.data(), static_cast<std::int64_t>(logits.size()), sample_options(p), u, scratch);
}

}  // namespace r1
