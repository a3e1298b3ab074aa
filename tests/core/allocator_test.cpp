// The caching allocator's policy, driven by host memory standing in for cudaMalloc (the same code runs
// over the GPU in kernels_gpu_test).
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "core/allocator.hpp"
#include "core/error.hpp"

using namespace r1;

namespace {
// Host-backed raw memory with a capacity, counting calls.
class BoundedHostMemory : public RawMemory {
 public:
  explicit BoundedHostMemory(std::size_t cap, int* mallocs, int* frees) : cap_(cap), mallocs_(mallocs), frees_(frees) {}
  void* malloc(std::size_t bytes) override {
    if (used_ + bytes > cap_) return nullptr;
    used_ += bytes;
    ++*mallocs_;
    void* p = std::malloc(bytes);
    sizes_[p] = bytes;
    return p;
  }
  void free(void* p) override {
    used_ -= sizes_.at(p);
    sizes_.erase(p);
    ++*frees_;
    std::free(p);
  }
  std::string describe_free() const override { return "test memory of " + std::to_string(cap_) + " bytes"; }

 private:
  std::size_t cap_, used_ = 0;
  int *mallocs_, *frees_;
  std::map<void*, std::size_t> sizes_;
};
}  // namespace

TEST(CachingAllocator, RoundsSmallAndLargeSizes) {
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size((1u << 20) + 1), 2u << 20);
  EXPECT_EQ(CachingAllocator::round_size(5u << 20), 6u << 20);
}

TEST(CachingAllocator, ReusesFreedBlocksWithoutNewRawAllocations) {
  int mallocs = 0, frees = 0;
  CachingAllocator a(std::make_unique<BoundedHostMemory>(64u << 20, &mallocs, &frees), Location::device, 0);
  for (int step = 0; step < 5; ++step) {  // a "training step" allocating the same sizes each time
    void* x = a.allocate(1000);
    void* y = a.allocate(3u << 20);
    a.deallocate(x, 1000);
    a.deallocate(y, 3u << 20);
  }
  EXPECT_EQ(mallocs, 2);
  const AllocatorStats s = a.stats();
  EXPECT_EQ(s.raw_allocs, 2u);
  EXPECT_EQ(s.hits, 8u);
  EXPECT_EQ(s.in_use, 0u);
  EXPECT_EQ(s.cached, 1024u + (4u << 20));
  EXPECT_EQ(s.peak_in_use, 1024u + (4u << 20));
  a.release_cache();
  EXPECT_EQ(frees, 2);
  EXPECT_EQ(a.stats().reserved, 0u);
}

TEST(CachingAllocator, LiveBlocksAreDistinct) {
  int mallocs = 0, frees = 0;
  CachingAllocator a(std::make_unique<BoundedHostMemory>(64u << 20, &mallocs, &frees), Location::device, 0);
  std::set<void*> seen;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(seen.insert(a.allocate(700)).second);
  for (void* p : seen) a.deallocate(p, 700);
}

TEST(CachingAllocator, ReleasesTheCacheAndRetriesWhenMemoryRunsOut) {
  int mallocs = 0, frees = 0;
  CachingAllocator a(std::make_unique<BoundedHostMemory>(8u << 20, &mallocs, &frees), Location::device, 0);
  void* p = a.allocate(6u << 20);
  a.deallocate(p, 6u << 20);               // 6 MiB cached
  void* q = a.allocate(4u << 20);          // does not fit beside the cached block: cache released, retried
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(frees, 1);
  a.deallocate(q, 4u << 20);
}

TEST(CachingAllocator, OutOfMemoryNamesTheRequestAndTheDevice) {
  int mallocs = 0, frees = 0;
  CachingAllocator a(std::make_unique<BoundedHostMemory>(4u << 20, &mallocs, &frees), Location::device, 0);
  try {
    a.allocate(10u << 20);
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("out of device memory: requested 10485760 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("test memory of 4194304 bytes"), std::string::npos) << m;
  }
}

// A CUDA graph's window: blocks freed inside it are reused only inside it, then belong to the graph (not
// handed out again) until given back; a block still held at the window's end is refused.
TEST(CachingAllocator, PrivatePoolKeepsTheWindowsBlocksUntilGivenBack) {
  int mallocs = 0, frees = 0;
  CachingAllocator a(std::make_unique<BoundedHostMemory>(64u << 20, &mallocs, &frees), Location::device, 0);
  void* cached = a.allocate(1000);
  a.deallocate(cached, 1000);
  a.begin_private_pool();
  void* x = a.allocate(1000);  // from the shared cache
  EXPECT_EQ(x, cached);
  a.deallocate(x, 1000);
  void* y = a.allocate(1000);  // the window reuses its own freed block
  EXPECT_EQ(y, x);
  void* z = a.allocate(3u << 20);
  a.deallocate(y, 1000);
  a.deallocate(z, 3u << 20);
  const CachingAllocator::Blocks blocks = a.end_private_pool();
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(a.stats().in_use, 512u * 2 + (4u << 20));  // the graph's blocks stay in use
  void* after = a.allocate(1000);  // not the graph's block
  EXPECT_NE(after, x);
  a.deallocate(after, 1000);
  a.give_back(blocks);
  EXPECT_EQ(a.stats().in_use, 0u);
  std::set<void*> reused{a.allocate(1000), a.allocate(1000)};
  EXPECT_EQ(reused.count(x), 1u);

  a.begin_private_pool();
  void* held = a.allocate(2000);
  EXPECT_THROW(a.end_private_pool(), Error);
  a.deallocate(held, 2000);
  a.begin_private_pool();  // the failed window closed
  EXPECT_NO_THROW(a.end_private_pool());
}

TEST(CachingAllocator, PeakRestartsFromWhatIsInUseAtReset) {
  int mallocs = 0, frees = 0;
  CachingAllocator a(std::make_unique<BoundedHostMemory>(64u << 20, &mallocs, &frees), Location::device, 0);
  void* kept = a.allocate(1000);               // 1024 B rounded, held across phases (weights)
  void* phase1 = a.allocate(5u << 20);         // 6 MiB rounded (a rollout's cache)
  a.deallocate(phase1, 5u << 20);
  EXPECT_EQ(a.use().peak, 1024u + (6u << 20));
  a.reset_peak();                              // the next phase counts from what is still held
  EXPECT_EQ(a.use().peak, 1024u);
  void* phase2 = a.allocate(1u << 20);         // 2 MiB rounded
  EXPECT_EQ(a.use().peak, 1024u + (2u << 20));
  EXPECT_EQ(a.use().in_use, 1024u + (2u << 20));
  a.deallocate(phase2, 1u << 20);
  a.deallocate(kept, 1000);
  EXPECT_EQ(a.use().in_use, 0u);
  Allocator& base = a;                         // the handover releases through the base interface
  base.release_cache();
  EXPECT_EQ(a.stats().reserved, 0u);
  EXPECT_EQ(frees, mallocs);
}

TEST(HostAllocator, CountsTheBytesItHoldsAndTheirPeak) {
  HostAllocator a;
  void* x = a.allocate(100);  // 128 B: 64-byte multiples
  void* y = a.allocate(64);
  EXPECT_EQ(a.use().in_use, 192u);
  a.deallocate(y, 64);
  EXPECT_EQ(a.use().in_use, 128u);
  EXPECT_EQ(a.use().peak, 192u);
  a.reset_peak();
  EXPECT_EQ(a.use().peak, 128u);
  a.deallocate(x, 100);
  EXPECT_EQ(a.use().in_use, 0u);
  EXPECT_EQ(a.use().peak, 128u);
}
