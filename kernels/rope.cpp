#include "kernels/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/cpu/rope.hpp"
#include "kernels/cuda/rope.hpp"
#include "kernels/nn_checks.hpp"

namespace r1::kernels {

namespace {
// DeepSeek-V3's YaRN ramp between the correction dims of beta_fast and beta_slow (kernels/rope.hpp).
void yarn_scale(const RopeConfig& c, std::vector<double>& inv_freq) {
  const auto correction_dim = [&](double rotations) {
    return c.rope_dim * std::log(static_cast<double>(c.original_seq_len) / (rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(c.theta));
  };
  const double low = std::max(std::floor(correction_dim(c.beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(c.beta_slow)), static_cast<double>(c.rope_dim - 1));
  if (low == high) high += 0.001;  // a step instead of a ramp, without dividing by zero
  for (std::size_t i = 0; i < inv_freq.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);  // 0: keep, 1: interpolate
    inv_freq[i] = inv_freq[i] / c.factor * ramp + inv_freq[i] * (1.0 - ramp);
  }
}

// Llama-3.1's wavelength bands, as transformers' _compute_llama3_parameters.
void llama3_scale(const RopeConfig& c, std::vector<double>& inv_freq) {
  const double original = static_cast<double>(c.original_seq_len);
  const double low_wavelen = original / c.low_freq_factor, high_wavelen = original / c.high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_wavelen) {
      f /= c.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (original / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
      f = (1.0 - smooth) * f / c.factor + smooth * f;
    }
  }
}
}  // namespace

RopeTables rope_tables(const Context& ctx, const RopeConfig& c, std::int64_t max_pos) {
  R1_REQUIRE(c.rope_dim > 0 && c.rope_dim % 2 == 0, "rope_tables: rope_dim must be even and positive, got ", c.rope_dim);
  R1_REQUIRE(c.theta > 1.0 && c.factor >= 1.0 && c.original_seq_len > 0 && c.beta_fast > 0 && c.beta_slow > 0,
             "rope_tables: need theta > 1, factor >= 1, original_seq_len > 0 and positive betas (theta ", c.theta,
             ", factor ", c.factor, ", original_seq_len ", c.original_seq_len, ", beta_fast ", c.beta_fast,
             ", beta_slow ", c.beta_slow, ")");
  R1_REQUIRE(!c.llama3 || (c.low_freq_factor > 0 && c.high_freq_factor > c.low_freq_factor), "rope_tables: llama3 ",
             "scaling needs 0 < low_freq_factor < high_freq_factor (got ", c.low_freq_factor, ", ", c.high_freq_factor, ")");
  R1_REQUIRE(max_pos > 0, "rope_tables: max_pos must be positive, got ", max_pos);
  const int half = c.rope_dim / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(c.theta, -2.0 * i / c.rope_dim);
  RopeTables t;
  if (c.llama3) {
    llama3_scale(c, inv_freq);
  } else if (c.factor > 1.0 && max_pos > c.original_seq_len) {
    yarn_scale(c, inv_freq);
    t.attention_mscale = static_cast<float>(0.1 * c.mscale * std::log(c.factor) + 1.0);
  }
  Tensor hc = Tensor::host({max_pos, half}, DType::f32), hs = Tensor::host({max_pos, half}, DType::f32);
  float* pc = hc.data<float>();
  float* ps = hs.data<float>();
  for (std::int64_t p = 0; p < max_pos; ++p)
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) * inv_freq[i];
      pc[p * half + i] = static_cast<float>(std::cos(a));
      ps[p * half + i] = static_cast<float>(std::sin(a));
    }
  t.cos = ctx.to_here(hc);
  t.sin = ctx.to_here(hs);
  return t;
}

namespace {
void rope_apply(const Context& ctx, const char* op, const Tensor& x, const Tensor& positions, const RopeTables& tables,
                std::int64_t offset, bool inverse) {
  require_all_here(ctx, op, {{"x", &x}, {"positions", &positions}, {"cos", &tables.cos}, {"sin", &tables.sin}});
  R1_REQUIRE((x.rank() == 2 || x.rank() == 3) && is_float(x.dtype()), op,
             ": x must be f32 or bf16 [T, H, row] or [T, row], got ", x.str());
  R1_REQUIRE(tables.cos.rank() == 2 && tables.cos.dtype() == DType::f32 && tables.sin.shape() == tables.cos.shape() &&
                 tables.sin.dtype() == DType::f32,
             op, ": cos ", tables.cos.str(), " and sin ", tables.sin.str(), " must be f32 [max_pos, rope_dim / 2]");
  const std::int64_t rope_dim = 2 * tables.cos.dim(1);
  R1_REQUIRE(offset >= 0 && offset + rope_dim <= x.dim(-1), op, ": columns [", offset, ", ", offset + rope_dim,
             ") of the rope slice do not fit rows of x ", x.str());
  require_vector(op, "positions", positions, DType::i32, x.dim(0), "x", x);
  if (x.numel() == 0) return;
#if defined(R1HPC_HAVE_CUDA)
  if (ctx.is_cuda()) return cuda::rope_apply(ctx, x, positions, tables, offset, inverse);
#endif
  const std::int32_t* pos = positions.data<std::int32_t>();
  const std::int64_t max_pos = tables.cos.dim(0);
  for (std::int64_t t = 0; t < positions.numel(); ++t)
    R1_REQUIRE(pos[t] >= 0 && pos[t] < max_pos, op, ": positions[", t, "] = ", pos[t], " is outside the tables ",
               tables.cos.str());
  cpu::rope_apply(x, positions, tables, offset, inverse);
}
}  // namespace

void rope_forward(const Context& ctx, const Tensor& x, const Tensor& positions, const RopeTables& tables,
                  std::int64_t offset) {
  rope_apply(ctx, "rope_forward", x, positions, tables, offset, false);
}

void rope_backward(const Context& ctx, const Tensor& dx, const Tensor& positions, const RopeTables& tables,
                   std::int64_t offset) {
  rope_apply(ctx, "rope_backward", dx, positions, tables, offset, true);
}

}  // namespace r1::kernels
