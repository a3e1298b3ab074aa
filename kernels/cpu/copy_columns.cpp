// CPU reference column-block copy / broadcast / group sum: one destination (row, group) at a time.
#include "kernels/cpu/copy_columns.hpp"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cpu {

void copy_columns(const Tensor& src, std::int64_t src_col, const Tensor& dst, std::int64_t dst_col, std::int64_t width) {
  const ColumnLayout s = column_layout(src), d = column_layout(dst);
  const bool sum = d.groups == 1 && s.groups > 1;
  with_float_type(src.dtype(), "copy_columns", [&](auto tag) {
    using T = decltype(tag);
    const T* ps = src.data<T>();
    T* pd = dst.data<T>();
#pragma omp parallel for collapse(2) schedule(static) if (d.rows * d.groups * width > 65536)
    for (std::int64_t r = 0; r < d.rows; ++r)
      for (std::int64_t g = 0; g < d.groups; ++g) {
        T* out = pd + (r * d.groups + g) * d.cols + dst_col;
        if (sum) {
          for (std::int64_t j = 0; j < width; ++j) {
            float acc = 0.0f;
            for (std::int64_t gs = 0; gs < s.groups; ++gs) acc += load_f32(ps[(r * s.groups + gs) * s.cols + src_col + j]);
            out[j] = store_as<T>(acc);
          }
        } else {
          const T* in = ps + (r * s.groups + (s.groups == 1 ? 0 : g)) * s.cols + src_col;
          for (std::int64_t j = 0; j < width; ++j) out[j] = in[j];
        }
      }
  });
}

}  // namespace r1::kernels::cpu
