// cuDNN's fused attention (kernels/cuda/cudnn_attention.hpp) through kernels::attention_forward/backward with the
// context's attention backend set to cudnn: against the CPU reference at the bench model's head dims (q/k 192, v
// 128, 16 heads), a GQA student's (28 query heads, 4 K/V heads, 128) and the small preset's (96, 64), in both
// backward variants, lse included; the deterministic variant gives the same bits run to run. cuDNN must have an
// engine for the bench shape (the test fails, never skips, when it does not); calls it does not take (segment
// ids, f32, a sequence length off 128) run our kernel, bit for bit.
// Labelled `gpu`: fails (never skips) without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/attention.hpp"
#include "kernels/cuda/cudnn_attention.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::AttentionBackend;
using kernels::Context;
using kernels::cuda::CudnnBackward;

namespace {

struct Dims {
  std::int64_t B, S, H, Hkv, Dqk, Dv;
};

Context with_backend(AttentionBackend b) {
  Context ctx = test::gpu_context();
  ctx.set_attention_backend(b);
  return ctx;
}
AttentionBackend backend_of(CudnnBackward v) {
  return v == CudnnBackward::deterministic ? AttentionBackend::cudnn : AttentionBackend::cudnn_nondeterministic;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(test::value(t, i)));
  return m;
}
bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ha = test::to_host(a), hb = test::to_host(b);
  return ha.nbytes() == hb.nbytes() && std::memcmp(ha.raw(), hb.raw(), ha.nbytes()) == 0;
}

// Host inputs and the CPU reference's outputs and gradients (bf16 tensors, f32 math).
struct Reference {
  Tensor q, k, v, dout, seg, out, lse, dq, dk, dv;
  float scale;
};
Reference reference(const Dims& d, DType dt, bool segments = false) {
  Reference r{test::random_tensor({d.B, d.S, d.H, d.Dqk}, dt, 1), test::random_tensor({d.B, d.S, d.Hkv, d.Dqk}, dt, 2),
              test::random_tensor({d.B, d.S, d.Hkv, d.Dv}, dt, 3),  test::random_tensor({d.B, d.S, d.H, d.Dv}, dt, 4),
              Tensor(), Tensor::host({d.B, d.S, d.H, d.Dv}, dt), Tensor::host({d.B, d.H, d.S}, DType::f32),
              Tensor::host({d.B, d.S, d.H, d.Dqk}, dt), Tensor::host({d.B, d.S, d.Hkv, d.Dqk}, dt),
              Tensor::host({d.B, d.S, d.Hkv, d.Dv}, dt), 1.0f / std::sqrt(static_cast<float>(d.Dqk))};
  if (segments) {  // two samples per row
    r.seg = Tensor::host({d.B, d.S}, DType::i32);
    for (std::int64_t i = 0; i < r.seg.numel(); ++i)
      r.seg.data<std::int32_t>()[i] = static_cast<std::int32_t>(i % d.S * 2 / d.S);
  }
  const Context cpu = Context::cpu();
  kernels::attention_forward(cpu, r.q, r.k, r.v, r.scale, r.seg, r.out, r.lse);
  kernels::attention_backward(cpu, r.q, r.k, r.v, r.out, r.dout, r.lse, r.seg, r.scale, r.dq, r.dk, r.dv);
  return r;
}

// One forward and backward on the GPU, the backward reading the forward's own out and lse (as training does).
struct Result {
  Tensor out, lse, dq, dk, dv;
};
Result run(const Context& dev, const Reference& r) {
  const Tensor q = dev.to_here(r.q), k = dev.to_here(r.k), v = dev.to_here(r.v), dout = dev.to_here(r.dout);
  const Tensor seg = r.seg.defined() ? dev.to_here(r.seg) : Tensor();
  Result g{dev.empty(r.out.shape(), r.out.dtype()), dev.empty(r.lse.shape(), DType::f32),
           dev.empty(r.q.shape(), r.q.dtype()), dev.empty(r.k.shape(), r.k.dtype()), dev.empty(r.v.shape(), r.v.dtype())};
  kernels::attention_forward(dev, q, k, v, r.scale, seg, g.out, g.lse);
  kernels::attention_backward(dev, q, k, v, g.out, dout, g.lse, seg, r.scale, g.dq, g.dk, g.dv);
  return g;
}

// Whether cuDNN takes a shape (device tensors of the shape), and why not.
bool supported(const Dims& d, DType dt, CudnnBackward variant, std::string& why, bool segments = false) {
  const Context dev = test::gpu_context();
  const Tensor q = dev.empty({d.B, d.S, d.H, d.Dqk}, dt), k = dev.empty({d.B, d.S, d.Hkv, d.Dqk}, dt);
  const Tensor v = dev.empty({d.B, d.S, d.Hkv, d.Dv}, dt);
  const Tensor seg = segments ? dev.empty({d.B, d.S}, DType::i32) : Tensor();
  return kernels::cuda::cudnn_attention_supported(dev, q, k, v, seg, variant, &why);
}

// The tolerances of the bf16 attention op cases (tests/kernels/op_cases_attention.cpp): fractions of the
// reference's largest magnitude; lse in f32 on both sides.
void expect_matches(const Reference& r, const Result& g) {
  const struct {
    const char* name;
    const Tensor& ref;
    const Tensor& got;
    double tol;
  } outputs[] = {{"out", r.out, g.out, 1.5e-2 * max_abs(r.out)},
                 {"lse", r.lse, g.lse, 1e-4 * (1 + max_abs(r.lse))},
                 {"dq", r.dq, g.dq, 3e-2 * max_abs(r.dq)},
                 {"dk", r.dk, g.dk, 3e-2 * max_abs(r.dk)},
                 {"dv", r.dv, g.dv, 3e-2 * max_abs(r.dv)}};
  for (const auto& o : outputs) EXPECT_LE(test::max_error(o.ref, test::to_host(o.got)), o.tol) << o.name;
}

constexpr Dims kBench{2, 4096, 16, 16, 192, 128};
constexpr Dims kBenchDims{1, 256, 16, 16, 192, 128};  // the bench model's heads and head dims, a shorter sequence
constexpr Dims kGqa{1, 256, 28, 4, 128, 128};         // Qwen2.5-7B's attention core
constexpr Dims kSmall{2, 128, 8, 8, 96, 64};          // the small preset's heads and head dims

class CudnnAttention : public ::testing::TestWithParam<CudnnBackward> {};

TEST_P(CudnnAttention, HasAnEngineForTheBenchShape) {
  std::string why;
  EXPECT_TRUE(supported(kBench, DType::bf16, GetParam(), why)) << why;
}

TEST_P(CudnnAttention, MatchesTheCpuReferenceAtTheBenchHeadDims) {
  std::string why;
  ASSERT_TRUE(supported(kBenchDims, DType::bf16, GetParam(), why)) << why;
  const Reference r = reference(kBenchDims, DType::bf16);
  expect_matches(r, run(with_backend(backend_of(GetParam())), r));
}

TEST_P(CudnnAttention, MatchesTheCpuReferenceWithGroupedKvHeads) {
  std::string why;
  ASSERT_TRUE(supported(kGqa, DType::bf16, GetParam(), why)) << why;
  const Reference r = reference(kGqa, DType::bf16);
  expect_matches(r, run(with_backend(backend_of(GetParam())), r));
}

TEST_P(CudnnAttention, MatchesTheCpuReferenceAtTheSmallPresetHeadDims) {
  std::string why;
  ASSERT_TRUE(supported(kSmall, DType::bf16, GetParam(), why)) << why;
  const Reference r = reference(kSmall, DType::bf16);
  expect_matches(r, run(with_backend(backend_of(GetParam())), r));
}

INSTANTIATE_TEST_SUITE_P(Backward, CudnnAttention,
                         ::testing::Values(CudnnBackward::deterministic, CudnnBackward::nondeterministic),
                         [](const auto& info) {
                           return info.param == CudnnBackward::deterministic ? "deterministic" : "nondeterministic";
                         });

// At the bench model's whole shape (no CPU reference: our kernel on the same device tensors is the comparison),
// with the tolerances of the CPU comparisons above; the plan's engine and workspace go to the test's record.
TEST_P(CudnnAttention, MatchesOurKernelAtTheBenchShape) {
  std::string why;
  ASSERT_TRUE(supported(kBench, DType::bf16, GetParam(), why)) << why;
  const Dims& d = kBench;
  Reference r{test::random_tensor({d.B, d.S, d.H, d.Dqk}, DType::bf16, 11), test::random_tensor({d.B, d.S, d.Hkv, d.Dqk}, DType::bf16, 12),
              test::random_tensor({d.B, d.S, d.Hkv, d.Dv}, DType::bf16, 13), test::random_tensor({d.B, d.S, d.H, d.Dv}, DType::bf16, 14),
              Tensor(), Tensor::host({d.B, d.S, d.H, d.Dv}, DType::bf16), Tensor::host({d.B, d.H, d.S}, DType::f32),
              Tensor::host({d.B, d.S, d.H, d.Dqk}, DType::bf16), Tensor::host({d.B, d.S, d.Hkv, d.Dqk}, DType::bf16),
              Tensor::host({d.B, d.S, d.Hkv, d.Dv}, DType::bf16), 1.0f / std::sqrt(static_cast<float>(d.Dqk))};
  const Result own = run(with_backend(AttentionBackend::own), r);
  const Result cudnn = run(with_backend(backend_of(GetParam())), r);
  r.out = test::to_host(own.out), r.lse = test::to_host(own.lse), r.dq = test::to_host(own.dq);
  r.dk = test::to_host(own.dk), r.dv = test::to_host(own.dv);
  expect_matches(r, cudnn);
  const Context dev = test::gpu_context();
  const auto info = kernels::cuda::cudnn_attention_plan_info(dev, dev.to_here(r.q), dev.to_here(r.k), dev.to_here(r.v), GetParam());
  RecordProperty("backward_engine", static_cast<int>(info.backward_engine));
  RecordProperty("backward_workspace_mib", static_cast<int>(info.backward_workspace >> 20));
  RecordProperty("backward_flagged_nondeterministic", info.backward_flagged_nondeterministic ? "yes" : "no");
  std::printf("cuDNN at the bench shape: forward engine %lld (%zu MiB), backward engine %lld (%zu MiB), flagged %s\n",
              info.forward_engine, info.forward_workspace >> 20, info.backward_engine, info.backward_workspace >> 20,
              info.backward_flagged_nondeterministic ? "non-deterministic" : "deterministic");
}

// The deterministic variant: the same bits run to run, with whole heads and with grouped K/V heads (dk, dv summed
// over a group inside cuDNN).
TEST(CudnnAttentionDeterministic, GivesTheSameBitsRunToRun) {
  for (const Dims& d : {kBenchDims, kGqa}) {
    SCOPED_TRACE(d.Hkv == d.H ? "whole heads" : "grouped K/V heads");
    const Reference r = reference(d, DType::bf16);
    const Context dev = with_backend(AttentionBackend::cudnn);
    const Result a = run(dev, r), b = run(dev, r);
    EXPECT_TRUE(same_bits(a.dq, b.dq));
    EXPECT_TRUE(same_bits(a.dk, b.dk));
    EXPECT_TRUE(same_bits(a.dv, b.dv));
  }
}

// Calls cuDNN does not take run our kernel: the same bits as with the backend set to own.
void expect_falls_back(const Dims& d, DType dt, bool segments, const char* reason) {
  std::string why;
  EXPECT_FALSE(supported(d, dt, CudnnBackward::deterministic, why, segments));
  EXPECT_NE(why.find(reason), std::string::npos) << why;
  const Reference r = reference(d, dt, segments);
  const Result own = run(with_backend(AttentionBackend::own), r), cudnn = run(with_backend(AttentionBackend::cudnn), r);
  EXPECT_TRUE(same_bits(own.out, cudnn.out) && same_bits(own.lse, cudnn.lse));
  EXPECT_TRUE(same_bits(own.dq, cudnn.dq) && same_bits(own.dk, cudnn.dk) && same_bits(own.dv, cudnn.dv));
}

TEST(CudnnAttentionFallback, SegmentIdsRunOurKernel) { expect_falls_back(kSmall, DType::bf16, true, "segment ids"); }
TEST(CudnnAttentionFallback, F32RunsOurKernel) { expect_falls_back(kSmall, DType::f32, false, "dtype f32"); }
TEST(CudnnAttentionFallback, SequenceOffAMultipleOf128RunsOurKernel) {
  expect_falls_back({2, 200, 8, 8, 96, 64}, DType::bf16, false, "multiple of 128");
}

}  // namespace
