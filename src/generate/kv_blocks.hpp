// The blocks of continuous batching's paged KV cache (KvCache::paged): a free list over the pool, each
// slot's blocks in token order, and the block table rows the decode kernels read.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.hpp"

namespace r1 {

struct SamplingParams;

// The pool's last block is the scratch block of idle slots: a slot without a sequence points every table
// entry at it and holds length 0, so that a decode step can still run over every slot (a CUDA graph keeps
// its batch) while the idle slots write and read nothing that belongs to a sequence. The `reserved` blocks
// before it are not handed out: the prefill region, where chunked prefills write their prompts' rows
// (generate/engine.cpp).
class KvBlocks {
 public:
  // Every block of `cache` but the reserved ones free, every slot idle (the table uploaded).
  explicit KvBlocks(KvCache& cache, std::int64_t reserved = 0);
  std::int32_t scratch() const { return scratch_; }
  // The first block of the reserved region, and its blocks.
  std::int32_t region_base() const { return static_cast<std::int32_t>(scratch_ - reserved_); }
  std::int64_t region_blocks() const { return reserved_; }
  std::int64_t block_size() const { return block_size_; }
  std::int64_t free_blocks() const { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t peak_used() const { return peak_; }
  // The blocks that `rows` cache rows take.
  std::int64_t blocks_for(std::int64_t rows) const { return (rows + block_size_ - 1) / block_size_; }
  // Gives `slot` blocks until it holds `rows` rows; false, with nothing changed, when too few are free.
  bool grow(KvCache& cache, std::size_t slot, std::int64_t rows);
  // Frees the slot's blocks and makes it idle.
  void release(KvCache& cache, std::size_t slot);
  bool holds(std::size_t slot) const { return !owned_[slot].empty(); }
  // After Model::keep_slots(cache, slots): the same slots' blocks, in that order.
  void keep(const std::vector<std::int32_t>& slots);
  // Copies the table to the device if it changed since the last upload.
  void upload(const KvCache& cache);

 private:
  std::int64_t block_size_, per_slot_, reserved_, used_ = 0, peak_ = 0;
  std::int32_t scratch_;
  std::vector<std::int32_t> free_;                // a stack: the lowest ids are handed out first
  std::vector<std::vector<std::int32_t>> owned_;  // per slot, in token order
  bool dirty_ = false;
};

// The pool blocks (without the scratch block) of a paged cache for `slots` slots of up to `max_len` rows
// of `bytes_per_token` bytes (all layers): SamplingParams::kv_cache_tokens, or its auto value less the
// `reserved` blocks of a prefill region, in blocks, at least the blocks of one longest sequence and at most
// every slot at max_len.
std::int64_t kv_pool_blocks(const kernels::Context& ctx, const SamplingParams& params, std::int64_t slots,
                            std::int64_t max_len, std::int64_t bytes_per_token, std::int64_t reserved = 0);
// The auto token budget on the CPU.
constexpr std::int64_t kDefaultCpuKvTokens = 65536;

}  // namespace r1
