// CUDA column-block copy / broadcast / group sum: one thread per destination element (consecutive
// threads on consecutive columns), sums over groups in the CPU reference's order.
#include "kernels/cuda/copy_columns.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/dispatch.hpp"

namespace r1::kernels::cuda {

namespace {
template <class T>
__global__ void copy_columns_kernel(std::int64_t n, std::int64_t width, std::int64_t dst_groups, std::int64_t dst_cols,
                                    std::int64_t dst_col, std::int64_t src_groups, std::int64_t src_cols,
                                    std::int64_t src_col, bool sum, const T* src, T* dst) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = i % width, rg = i / width;  // rg = r * dst_groups + g
    const std::int64_t r = rg / dst_groups, g = rg - r * dst_groups;
    T* out = dst + rg * dst_cols + dst_col + j;
    if (sum) {
      float acc = 0.0f;
      for (std::int64_t gs = 0; gs < src_groups; ++gs) acc += load_f32(src[(r * src_groups + gs) * src_cols + src_col + j]);
      *out = store_as<T>(acc);
    } else {
      *out = src[(r * src_groups + (src_groups == 1 ? 0 : g)) * src_cols + src_col + j];
    }
  }
}
}  // namespace

void copy_columns(const Context& ctx, const Tensor& src, std::int64_t src_col, const Tensor& dst, std::int64_t dst_col,
                  std::int64_t width) {
  const ColumnLayout s = column_layout(src), d = column_layout(dst);
  const std::int64_t n = d.rows * d.groups * width;
  const Launch l = elementwise_launch(ctx, n);
  with_float_type(src.dtype(), "copy_columns", [&](auto tag) {
    using T = decltype(tag);
    copy_columns_kernel<<<l.grid, l.block, 0, l.stream>>>(n, width, d.groups, d.cols, dst_col, s.groups, s.cols, src_col,
                                                          d.groups == 1 && s.groups > 1, src.data<T>(), dst.data<T>());
  });
  R1_CUDA_LAUNCHED("copy_columns");
}

}  // namespace r1::kernels::cuda
