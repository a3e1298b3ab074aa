// The collective tests on the NCCL backend (device buffers), on the world and on every mesh group.
// Labelled `gpu`: one GPU per rank (rank % visible GPUs); fails, never skips, without a GPU.
#include "parallel/collective_tests.hpp"

namespace r1::parallel::test {
namespace {
struct NcclDevice {
  static constexpr Backend backend = Backend::nccl;
  static kernels::Context context() {
    const int n = kernels::Context::cuda_device_count();
    if (n == 0) throw std::runtime_error("the NCCL collective tests need a visible CUDA device; none is visible");
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return kernels::Context::cuda(rank % n);
  }
  static Tensor foreign(std::int64_t n) { return Tensor::host({n}, DType::f32); }
  // NCCL adds bf16 in bf16 steps (rounding after each of up to size-1 hops): an ulp per member.
  static double bf16_sum_ulps(int size) { return size; }
};
}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Nccl, Collectives, NcclDevice);

}  // namespace r1::parallel::test
