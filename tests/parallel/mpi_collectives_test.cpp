// The collective tests on the MPI backend (host buffers), on the world and on every mesh group.
#include "parallel/collective_tests.hpp"

namespace r1::parallel::test {
namespace {
// Host memory that says it is device memory: a tensor the MPI backend must refuse, made without a GPU.
class FakeDeviceAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override { return host_allocator()->allocate(bytes); }
  void deallocate(void* ptr, std::size_t bytes) override { host_allocator()->deallocate(ptr, bytes); }
  Location location() const override { return Location::device; }
  int device() const override { return 0; }
};

struct MpiHost {
  static constexpr Backend backend = Backend::mpi;
  static kernels::Context context() { return kernels::Context::cpu(); }
  static Tensor foreign(std::int64_t n) {
    return Tensor::empty({n}, DType::f32, std::make_shared<FakeDeviceAllocator>());
  }
  // bf16 is reduced in f32 and rounded once: the sum is exact (to the rounding of the exact sum).
  static double bf16_sum_ulps(int) { return 0; }
};
}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Mpi, Collectives, MpiHost);

}  // namespace r1::parallel::test
