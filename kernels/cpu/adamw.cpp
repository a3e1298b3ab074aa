// CPU reference AdamW: one pass over each tensor's elements, the update shared with CUDA (kernels/adamw_math.hpp).
#include "kernels/cpu/adamw.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

namespace {
template <class M> void update(const detail::AdamWRow& r, const detail::AdamWCoefficients& k) {
  auto* m = static_cast<M*>(r.m);
  auto* v = static_cast<M*>(r.v);
#pragma omp parallel for schedule(static) if (r.n > (1 << 14))
  for (std::int64_t i = 0; i < r.n; ++i) {
    float mi = load_f32(m[i]), vi = load_f32(v[i]);
    r.p[i] = detail::adamw_update(k, r.decay, r.p[i], r.g[i], mi, vi);
    m[i] = store_as<M>(mi);
    v[i] = store_as<M>(vi);
    if (r.pb) r.pb[i] = to_bf16(r.p[i]);
  }
}
}  // namespace

void adamw_multi_step(const std::vector<detail::AdamWRow>& rows, DType moments, const detail::AdamWCoefficients& k) {
  for (const detail::AdamWRow& r : rows) {
    if (moments == DType::bf16) update<bf16>(r, k);
    else update<float>(r, k);
  }
}

}  // namespace r1::kernels::cpu
