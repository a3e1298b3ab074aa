// CPU reference row gather: one memcpy per destination row.
#include <cstring>

#include "kernels/cpu/gather_rows.hpp"

namespace r1::kernels::cpu {

void gather_rows(const Tensor& src, const Tensor& rows, const Tensor& dst) {
  const std::int64_t n = dst.dim(0);
  const std::size_t row_bytes = dst.nbytes() / static_cast<std::size_t>(n);
  const std::int32_t* pr = rows.data<std::int32_t>();
  const auto* ps = static_cast<const char*>(src.raw());
  auto* pd = static_cast<char*>(dst.raw());
#pragma omp parallel for schedule(static) if (dst.nbytes() > (1u << 20))
  for (std::int64_t i = 0; i < n; ++i)
    std::memcpy(pd + static_cast<std::size_t>(i) * row_bytes, ps + static_cast<std::size_t>(pr[i]) * row_bytes, row_bytes);
}

}  // namespace r1::kernels::cpu
