// CPU reference embedding. The backward groups tokens by id (a stable counting sort), then each id's
// rows are summed in token order in f32 and added to the table once: the same order as the CUDA version,
// independent of the thread count.
#include <vector>

#include "kernels/cpu/embedding.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void embedding_forward(const Tensor& table, const Tensor& ids, const Tensor& out) {
  const std::int64_t rows = out.dim(0), d = out.dim(1);
  const std::int32_t* pi = ids.data<std::int32_t>();
  with_float_type(table.dtype(), "embedding_forward", [&](auto ttag) {
    with_float_type(out.dtype(), "embedding_forward", [&](auto otag) {
      using TT = decltype(ttag);
      using TO = decltype(otag);
      const TT* pt = table.data<TT>();
      TO* po = out.data<TO>();
#pragma omp parallel for schedule(static)
      for (std::int64_t t = 0; t < rows; ++t)
        for (std::int64_t j = 0; j < d; ++j) po[t * d + j] = store_as<TO>(pi[t] < 0 ? 0.0f : load_f32(pt[pi[t] * d + j]));
    });
  });
}

void embedding_backward(const Tensor& dout, const Tensor& ids, const Tensor& dtable) {
  const std::int64_t rows = dout.dim(0), d = dout.dim(1), vocab = dtable.dim(0);
  const std::int32_t* pi = ids.data<std::int32_t>();
  // start[id] .. start[id + 1]: the tokens of id, in token order.
  std::vector<std::int64_t> start(static_cast<std::size_t>(vocab) + 1, 0), order(static_cast<std::size_t>(rows));
  for (std::int64_t t = 0; t < rows; ++t)
    if (pi[t] >= 0) ++start[pi[t] + 1];
  for (std::int64_t v = 0; v < vocab; ++v) start[v + 1] += start[v];
  std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
  for (std::int64_t t = 0; t < rows; ++t)
    if (pi[t] >= 0) order[fill[pi[t]]++] = t;
  float* pd = dtable.data<float>();
  with_float_type(dout.dtype(), "embedding_backward", [&](auto tag) {
    using G = decltype(tag);
    const G* pg = dout.data<G>();
#pragma omp parallel
    {
      std::vector<float> acc(static_cast<std::size_t>(d));
#pragma omp for schedule(dynamic, 64)
      for (std::int64_t v = 0; v < vocab; ++v) {
        if (start[v] == start[v + 1]) continue;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (std::int64_t k = start[v]; k < start[v + 1]; ++k)
          for (std::int64_t j = 0; j < d; ++j) acc[j] += load_f32(pg[order[k] * d + j]);
        for (std::int64_t j = 0; j < d; ++j) pd[v * d + j] += acc[j];
      }
    }
  });
}

}  // namespace r1::kernels::cpu
