// Allocators: aligned host memory, and a caching device allocator that reuses freed blocks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace r1 {

enum class Location : std::uint8_t { host, device };

// Bytes an allocator has handed out and not taken back, now and at most since its last reset_peak().
struct MemoryUse {
  std::size_t in_use = 0, peak = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
  virtual Location location() const = 0;
  virtual int device() const { return -1; }
  // The allocator's own accounting, so that a phase of a step (GRPO's rollout, scoring, update) can report
  // its peak: reset_peak() at its start, use().peak at its end. Allocators that keep no account return zeros.
  virtual MemoryUse use() const { return {}; }
  virtual void reset_peak() {}
  // Returns memory kept for reuse (freed blocks of a caching allocator) to the system; none by default.
  virtual void release_cache() {}
};

// 64-byte aligned host memory (one cache line, and the widest SIMD load), counting the bytes it holds.
class HostAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  Location location() const override { return Location::host; }
  MemoryUse use() const override;
  void reset_peak() override;

 private:
  mutable std::mutex mu_;
  MemoryUse use_;
};
std::shared_ptr<Allocator> host_allocator();
// Host memory for staging device tensors (checkpoint saves): page-locked and cached for reuse when a GPU
// is visible, so the copies run at bus speed and the next save pins nothing; otherwise host_allocator().
std::shared_ptr<Allocator> staging_host_allocator();

// Where a caching allocator gets its memory from: cudaMalloc/cudaFree for a GPU.
class RawMemory {
 public:
  virtual ~RawMemory() = default;
  virtual void* malloc(std::size_t bytes) = 0;  // nullptr when out of memory
  virtual void free(void* ptr) = 0;
  virtual std::string describe_free() const { return {}; }  // e.g. "device 0: 12.3 GiB free of 80 GiB"
};
#if defined(R1HPC_HAVE_CUDA)
std::unique_ptr<RawMemory> cuda_raw_memory(int device);
#endif

struct AllocatorStats {
  std::size_t in_use = 0;       // bytes handed out and not yet returned (rounded sizes)
  std::size_t peak_in_use = 0;
  std::size_t cached = 0;       // bytes held in free lists
  std::size_t reserved = 0;     // bytes obtained from RawMemory in all
  std::size_t raw_allocs = 0;   // calls to RawMemory::malloc
  std::size_t hits = 0;         // allocations served from the cache
};

// Caching allocator: sizes are rounded (512 B under 1 MiB, else 2 MiB multiples) and freed blocks are
// kept in per-size free lists for reuse, so a steady-state training step makes no cudaMalloc. Blocks are
// reused in program order: correct for work ordered on one stream per device, which r1hpc uses.
// When RawMemory runs out, the cache is released and the allocation retried once before failing.
class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(std::unique_ptr<RawMemory> raw, Location loc, int device);
  ~CachingAllocator() override;
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  Location location() const override { return loc_; }
  int device() const override { return device_; }
  void release_cache() override;  // returns every cached block to RawMemory
  AllocatorStats stats() const;
  MemoryUse use() const override;  // in_use and peak_in_use of stats()
  void reset_peak() override;      // peak_in_use = in_use
  static std::size_t round_size(std::size_t bytes);

  // A private pool for CUDA graph capture. Between begin_private_pool() and end_private_pool(), freed
  // blocks go to a private list that only allocations of the same window reuse (the captured work runs in
  // that order), and end_private_pool() hands the list to the caller (the graph, which writes those blocks
  // at every replay) rather than to the shared cache; give_back() returns them once the graph is gone.
  // A block allocated in the window and still held at its end is an internal error: the graph would write
  // memory its holder owns.
  using Blocks = std::vector<std::pair<std::size_t, void*>>;  // (rounded size, pointer)
  void begin_private_pool();
  Blocks end_private_pool();
  void give_back(const Blocks& blocks);

 private:
  void cache_blocks(const Blocks& blocks);  // into the shared cache; mu_ held
  std::unique_ptr<RawMemory> raw_;
  Location loc_;
  int device_;
  mutable std::mutex mu_;
  std::multimap<std::size_t, void*> free_;  // rounded size -> block
  AllocatorStats stats_;
  bool private_ = false;
  std::multimap<std::size_t, void*> private_free_;
  std::set<void*> private_live_;
};

}  // namespace r1
