// MoE kernels on the GPU beyond the op table's parity cases (tests/kernels/op_cases_moe.cpp): a bad expert
// index is a user error, and the decode-batch experts match the CPU reference at decode shapes, the same bits
// run to run. Labelled `gpu`: needs a CUDA device and fails (never skips) without one.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/moe_decode.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context kCpu = Context::cpu();

bool same_bits(const Tensor& device, const Tensor& host) {
  return std::memcmp(test::to_host(device).raw(), host.raw(), host.nbytes()) == 0;
}
double max_abs(const Tensor& t) { return test::max_error(t, Tensor::host_zeros(t.shape(), t.dtype())); }
}  // namespace

TEST(MoePermuteParity, BadExpertIndexIsAUserError) {
  const Context dev = test::gpu_context();
  Tensor idx = Tensor::host({4, 2}, DType::i32);
  for (int i = 0; i < 8; ++i) idx.data<std::int32_t>()[i] = i == 5 ? 9 : i % 4;
  Tensor xp = dev.empty({8, 4}, DType::f32), row = dev.empty({4, 2}, DType::i32), off = dev.empty({5}, DType::i32);
  EXPECT_THROW(kernels::moe_permute(dev, dev.zeros({4, 4}, DType::f32), dev.to_here(idx), xp, row, off), Error);
}

// The decode-batch experts on the GPU against the CPU reference: the packed path (widths multiples of 8)
// at V2-Lite-like shapes and the scalar path at odd widths; f32 to summation order, bf16 within a flipped
// rounding of an intermediate; the same bits run to run.
TEST(MoeDecodeParity, MatchesTheCpuReference) {
  const Context dev = test::gpu_context();
  struct Case {
    std::int64_t t, k, e, d, inter;
  };
  // Bench shapes at batch 1 (fewer experts); several output columns per down block (k = 2, 3); more slots
  // than a down block has warps (k = 10); a last down block only partly inside D (D = 101, k = 3).
  for (const Case cs : {Case{1, 6, 8, 2048, 1408}, Case{1, 6, 64, 512, 176}, Case{8, 2, 16, 256, 96},
                        Case{3, 3, 9, 100, 36}, Case{2, 10, 12, 64, 40}, Case{2, 3, 5, 101, 40}}) {
    Tensor idx = Tensor::host({cs.t, cs.k}, DType::i32);
    for (std::int64_t i = 0; i < cs.t * cs.k; ++i)
      idx.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 5 + i / cs.k) % cs.e);
    const Tensor gates = test::random_tensor({cs.t, cs.k}, DType::f32, 4);
    for (DType dt : {DType::f32, DType::bf16}) {
      const Tensor x = test::random_tensor({cs.t, cs.d}, dt, 1);
      const Tensor gate_up = test::random_tensor({cs.e, 2 * cs.inter, cs.d}, dt, 2, 0.05f);
      const Tensor down = test::random_tensor({cs.e, cs.d, cs.inter}, dt, 3, 0.05f);
      Tensor h = Tensor::host({cs.t * cs.k, cs.inter}, dt), out = Tensor::host({cs.t, cs.d}, dt);
      kernels::moe_decode_experts(kCpu, x, idx, gates, gate_up, down, h, out);
      const Tensor dh = dev.empty(h.shape(), dt), dout = dev.empty(out.shape(), dt);
      kernels::moe_decode_experts(dev, dev.to_here(x), dev.to_here(idx), dev.to_here(gates), dev.to_here(gate_up),
                                  dev.to_here(down), dh, dout);
      const double tol = dt == DType::f32 ? 1e-5 : 2e-2;
      EXPECT_LE(test::max_error(test::to_host(dh), h), tol * max_abs(h)) << cs.d << " " << dtype_name(dt) << ": h";
      EXPECT_LE(test::max_error(test::to_host(dout), out), tol * max_abs(out)) << cs.d << " " << dtype_name(dt);
      // A second run gives the same bits (fixed reduction orders, no atomics).
      const Tensor dh2 = dev.empty(h.shape(), dt), dout2 = dev.empty(out.shape(), dt);
      kernels::moe_decode_experts(dev, dev.to_here(x), dev.to_here(idx), dev.to_here(gates), dev.to_here(gate_up),
                                  dev.to_here(down), dh2, dout2);
      EXPECT_TRUE(same_bits(dh2, test::to_host(dh)) && same_bits(dout2, test::to_host(dout)))
          << cs.d << " " << dtype_name(dt);
    }
  }
}
