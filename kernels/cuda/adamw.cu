// CUDA AdamW over many tensors in one launch (a multi-tensor apply): the host uploads a table of the tensors,
// each cut into fixed chunks of kChunk elements, one block per chunk; a block finds its tensor by binary search
// over the table's first-block column. Four elements per access where a tensor's pointers allow.
#include <vector>

#include "kernels/cuda/adamw.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/rowwise.cuh"

namespace r1::kernels::cuda {

namespace {
constexpr int kThreads = 256;
constexpr std::int64_t kChunk = 1 << 14;  // elements per block: 16 packs of 4 per thread

struct DeviceRow {
  detail::AdamWRow row;
  std::int64_t first_block;  // the block that takes the tensor's first chunk
  int packed;                // n and every pointer allow packs of four
};

template <class M, int N>
__device__ void update_range(const detail::AdamWCoefficients& k, const detail::AdamWRow& r, std::int64_t lo,
                             std::int64_t hi) {
  M* m = static_cast<M*>(r.m);
  M* v = static_cast<M*>(r.v);
  for (std::int64_t i = lo + static_cast<std::int64_t>(threadIdx.x) * N; i < hi; i += kThreads * N) {
    float pv[N], gv[N], mv[N], vv[N];
    load_pack<N>(r.p + i, pv);
    load_pack<N>(r.g + i, gv);
    load_pack<N>(m + i, mv);
    load_pack<N>(v + i, vv);
#pragma unroll
    for (int j = 0; j < N; ++j) pv[j] = detail::adamw_update(k, r.decay, pv[j], gv[j], mv[j], vv[j]);
    store_pack<N>(r.p + i, pv);
    store_pack<N>(m + i, mv);
    store_pack<N>(v + i, vv);
    if (r.pb) store_pack<N>(r.pb + i, pv);
  }
}

template <class M> __global__ void adamw_multi_kernel(const DeviceRow* rows, int count, detail::AdamWCoefficients k) {
  const std::int64_t b = blockIdx.x;
  int lo = 0, hi = count - 1;  // the last row whose first block is <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (rows[mid].first_block <= b) lo = mid;
    else hi = mid - 1;
  }
  const DeviceRow d = rows[lo];
  const std::int64_t begin = (b - d.first_block) * kChunk, end = min(begin + kChunk, d.row.n);
  if (d.packed) update_range<M, 4>(k, d.row, begin, end);
  else update_range<M, 1>(k, d.row, begin, end);
}

bool aligned(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }
}  // namespace

void adamw_multi_step(const Context& ctx, const std::vector<detail::AdamWRow>& rows, DType moments,
                      const detail::AdamWCoefficients& k) {
  const std::size_t ms = dtype_size(moments);
  std::vector<DeviceRow> table;
  table.reserve(rows.size());
  std::int64_t blocks = 0;
  for (const detail::AdamWRow& r : rows) {
    const bool packed = r.n % 4 == 0 && aligned(r.p, 16) && aligned(r.g, 16) && aligned(r.m, 4 * ms) &&
                        aligned(r.v, 4 * ms) && (r.pb == nullptr || aligned(r.pb, 8));
    table.push_back({r, blocks, packed ? 1 : 0});
    blocks += (r.n + kChunk - 1) / kChunk;
  }
  R1_CHECK(blocks < (std::int64_t{1} << 31), "adamw_step: ", blocks, " chunks exceed one launch's grid");
  cudaStream_t s = ctx.cuda_resources().stream;
  const auto bytes = static_cast<std::int64_t>(table.size() * sizeof(DeviceRow));
  const Tensor dev = ctx.empty({bytes}, DType::u8);
  // From pageable memory: the copy completes before cudaMemcpyAsync returns, so `table` may go.
  R1_CUDA(cudaMemcpyAsync(dev.raw(), table.data(), static_cast<std::size_t>(bytes), cudaMemcpyHostToDevice, s));
  const auto* d = static_cast<const DeviceRow*>(dev.raw());
  const int count = static_cast<int>(table.size());
  if (moments == DType::bf16) adamw_multi_kernel<bf16><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(d, count, k);
  else adamw_multi_kernel<float><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(d, count, k);
  R1_CUDA_LAUNCHED("adamw_step");
}

}  // namespace r1::kernels::cuda
