#include "core/allocator.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "core/error.hpp"

#if defined(R1HPC_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace r1 {

void* HostAllocator::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t size = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, size);
  if (!p) R1_FAIL(internal, "out of host memory allocating ", bytes, " bytes");
  std::lock_guard<std::mutex> lock(mu_);
  use_.in_use += size;
  use_.peak = std::max(use_.peak, use_.in_use);
  return p;
}
void HostAllocator::deallocate(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  std::free(ptr);
  std::lock_guard<std::mutex> lock(mu_);
  use_.in_use -= (bytes + 63) / 64 * 64;
}
MemoryUse HostAllocator::use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return use_;
}
void HostAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  use_.peak = use_.in_use;
}

std::shared_ptr<Allocator> host_allocator() {
  static const std::shared_ptr<Allocator> a = std::make_shared<HostAllocator>();
  return a;
}

#if defined(R1HPC_HAVE_CUDA)
namespace {
class CudaRawMemory final : public RawMemory {
 public:
  explicit CudaRawMemory(int device) : device_(device) {}
  void* malloc(std::size_t bytes) override {
    void* p = nullptr;
    cudaSetDevice(device_);
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky out-of-memory error
      return nullptr;
    }
    return p;
  }
  void free(void* ptr) override {
    cudaSetDevice(device_);
    cudaFree(ptr);
  }
  std::string describe_free() const override {
    std::size_t free_b = 0, total_b = 0;
    cudaSetDevice(device_);
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return {};
    return detail::concat("device ", device_, " has ", free_b >> 20, " MiB free of ", total_b >> 20, " MiB");
  }

 private:
  int device_;
};

// Page-locked host memory: device-to-host copies into it run at PCIe/NVLink-C2C speed instead of through
// the driver's pageable bounce buffers.
class PinnedRawMemory final : public RawMemory {
 public:
  void* malloc(std::size_t bytes) override {
    void* p = nullptr;
    if (cudaMallocHost(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return p;
  }
  void free(void* ptr) override { cudaFreeHost(ptr); }
};
}  // namespace
std::unique_ptr<RawMemory> cuda_raw_memory(int device) { return std::make_unique<CudaRawMemory>(device); }
#endif

std::shared_ptr<Allocator> staging_host_allocator() {
#if defined(R1HPC_HAVE_CUDA)
  static const std::shared_ptr<Allocator> a = []() -> std::shared_ptr<Allocator> {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
      cudaGetLastError();
      return host_allocator();
    }
    return std::make_shared<CachingAllocator>(std::make_unique<PinnedRawMemory>(), Location::host, -1);
  }();
  return a;
#else
  return host_allocator();
#endif
}

CachingAllocator::CachingAllocator(std::unique_ptr<RawMemory> raw, Location loc, int device)
    : raw_(std::move(raw)), loc_(loc), device_(device) {}

CachingAllocator::~CachingAllocator() { release_cache(); }

std::size_t CachingAllocator::round_size(std::size_t bytes) {
  constexpr std::size_t kSmall = 512, kLarge = 2u << 20, kSmallLimit = 1u << 20;
  if (bytes == 0) bytes = 1;
  if (bytes < kSmallLimit) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(std::size_t bytes) {
  const std::size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (private_) {
    if (auto it = private_free_.find(size); it != private_free_.end()) {  // counted in use all along
      void* p = it->second;
      private_free_.erase(it);
      private_live_.insert(p);
      ++stats_.hits;
      return p;
    }
  }
  if (auto it = free_.find(size); it != free_.end()) {
    void* p = it->second;
    free_.erase(it);
    if (private_) private_live_.insert(p);
    stats_.cached -= size;
    stats_.in_use += size;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    ++stats_.hits;
    return p;
  }
  void* p = raw_->malloc(size);
  if (!p && !free_.empty()) {
    for (auto& [s, q] : free_) {
      raw_->free(q);
      stats_.reserved -= s;
    }
    free_.clear();
    stats_.cached = 0;
    p = raw_->malloc(size);
  }
  if (!p) {
    R1_FAIL(internal, "out of device memory: requested ", bytes, " bytes (", size, " rounded); ",
            stats_.in_use >> 20, " MiB in use by r1hpc, peak ", stats_.peak_in_use >> 20, " MiB",
            raw_->describe_free().empty() ? "" : "; ", raw_->describe_free(),
            ". Lower [train] micro_batch or sequence length, enable recomputation, or add ranks");
  }
  ++stats_.raw_allocs;
  if (private_) private_live_.insert(p);
  stats_.reserved += size;
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return p;
}

void CachingAllocator::deallocate(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  const std::size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (private_) {  // stays in use until give_back()
    private_free_.emplace(size, ptr);
    private_live_.erase(ptr);
    return;
  }
  free_.emplace(size, ptr);
  stats_.in_use -= size;
  stats_.cached += size;
}

void CachingAllocator::begin_private_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  R1_CHECK(!private_, "begin_private_pool: a private pool is already open");
  private_ = true;
}

CachingAllocator::Blocks CachingAllocator::end_private_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  R1_CHECK(private_, "end_private_pool: no private pool is open");
  private_ = false;
  Blocks blocks(private_free_.begin(), private_free_.end());
  private_free_.clear();
  const std::size_t held = private_live_.size();
  private_live_.clear();
  if (held > 0) {  // no graph will use the window's blocks: they go back to the cache
    cache_blocks(blocks);
    R1_FAIL(internal, "end_private_pool: ", held, " block(s) allocated in the private window are still held");
  }
  return blocks;
}

void CachingAllocator::give_back(const Blocks& blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  cache_blocks(blocks);
}

void CachingAllocator::cache_blocks(const Blocks& blocks) {
  for (const auto& [size, p] : blocks) {
    free_.emplace(size, p);
    stats_.in_use -= size;
    stats_.cached += size;
  }
}

void CachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [s, q] : free_) {
    raw_->free(q);
    stats_.reserved -= s;
  }
  free_.clear();
  stats_.cached = 0;
}

MemoryUse CachingAllocator::use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {.in_use = stats_.in_use, .peak = stats_.peak_in_use};
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_in_use = stats_.in_use;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace r1
