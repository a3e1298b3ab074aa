// Column blocks copied between row-major tensors: the per-head splits and joins that a contiguous
// Tensor view cannot express (MLA's [k_nope | v] rows of kv_b, its [k_nope | k_pe] keys, and the sum of
// the shared rope key's gradient over heads).
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// src and dst are viewed as [rows, groups, cols] (a rank-2 tensor is one group); for 0 <= j < width:
//   dst[r, g, dst_col + j] = src[r, g, src_col + j]        same number of groups
//   dst[r, g, dst_col + j] = src[r, 0, src_col + j]        src has one group: broadcast to every group
//   dst[r, 0, dst_col + j] = sum_g src[r, g, src_col + j]  dst has one group: sum over groups (f32, g in order)
// Other columns of dst are left as they are. src and dst: f32 or bf16, one dtype, same rows, not
// overlapping. Copies are exact; sums are the same bits on every backend.
void copy_columns(const Context& ctx, const Tensor& src, std::int64_t src_col, const Tensor& dst, std::int64_t dst_col,
                  std::int64_t width);

// The [rows, groups, cols] view of a rank-2 or rank-3 tensor, checked by copy_columns.
struct ColumnLayout {
  std::int64_t rows = 0, groups = 1, cols = 0;
};
ColumnLayout column_layout(const Tensor& t);

}  // namespace r1::kernels
