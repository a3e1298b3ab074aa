#include "generate/kv_blocks.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "generate/sampling.hpp"
#if defined(R1HPC_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace r1 {

KvBlocks::KvBlocks(KvCache& cache, std::int64_t reserved)
    : block_size_(cache.block_size), per_slot_(cache.blocks_per_slot()), reserved_(reserved),
      scratch_(static_cast<std::int32_t>(cache.pool_blocks() - 1)), owned_(static_cast<std::size_t>(cache.slots())) {
  R1_CHECK(cache.paged() && reserved >= 0 && scratch_ - reserved >= 1,
           "KvBlocks: a paged cache with a pool of at least two blocks besides ", reserved, " reserved");
  for (auto b = static_cast<std::int32_t>(scratch_ - reserved - 1); b >= 0; --b) free_.push_back(b);
  for (std::size_t s = 0; s < owned_.size(); ++s) release(cache, s);
  upload(cache);
}

bool KvBlocks::grow(KvCache& cache, std::size_t slot, std::int64_t rows) {
  std::vector<std::int32_t>& mine = owned_[slot];
  const std::int64_t want = blocks_for(rows) - static_cast<std::int64_t>(mine.size());
  R1_CHECK(blocks_for(rows) <= per_slot_, "KvBlocks::grow: ", rows, " rows exceed a slot's ", per_slot_, " blocks");
  if (want <= 0) return true;
  if (want > free_blocks()) return false;
  for (std::int64_t i = 0; i < want; ++i) {
    cache.table[slot * static_cast<std::size_t>(per_slot_) + mine.size()] = free_.back();
    mine.push_back(free_.back());
    free_.pop_back();
  }
  used_ += want;
  peak_ = std::max(peak_, used_);
  dirty_ = true;
  return true;
}

void KvBlocks::release(KvCache& cache, std::size_t slot) {
  std::vector<std::int32_t>& mine = owned_[slot];
  used_ -= static_cast<std::int64_t>(mine.size());
  for (auto it = mine.rbegin(); it != mine.rend(); ++it) free_.push_back(*it);
  mine.clear();
  const auto first = cache.table.begin() + static_cast<std::ptrdiff_t>(slot * static_cast<std::size_t>(per_slot_));
  std::fill(first, first + per_slot_, scratch_);
  cache.lengths[slot] = 0;
  dirty_ = true;
}

void KvBlocks::keep(const std::vector<std::int32_t>& slots) {
  std::vector<std::vector<std::int32_t>> kept;
  for (std::int32_t s : slots) kept.push_back(std::move(owned_[static_cast<std::size_t>(s)]));
  owned_ = std::move(kept);
}

void KvBlocks::upload(const KvCache& cache) {
  if (!dirty_ || cache.slots() == 0) return;
  cache.upload_table();
  dirty_ = false;
}

std::int64_t kv_pool_blocks(const kernels::Context& ctx, const SamplingParams& params, std::int64_t slots,
                            std::int64_t max_len, std::int64_t bytes_per_token, std::int64_t reserved) {
  const std::int64_t bs = params.kv_block_size, per = (max_len + bs - 1) / bs;
  std::int64_t tokens = params.kv_cache_tokens;
  if (tokens == 0) {
    tokens = kDefaultCpuKvTokens;
#if defined(R1HPC_HAVE_CUDA)
    std::size_t free_b = 0, total_b = 0;
    if (ctx.is_cuda() && cudaSetDevice(ctx.device()) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      tokens = static_cast<std::int64_t>(0.9 * static_cast<double>(free_b)) / std::max<std::int64_t>(bytes_per_token, 1);
#else
    (void)ctx;
    (void)bytes_per_token;
#endif
    tokens -= reserved * bs;
  }
  return std::clamp(tokens / bs, per, slots * per);
}

}  // namespace r1
