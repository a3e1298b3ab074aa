// CPU reference vs CUDA for every NN building block, forward and backward, f32 and bf16 activations.
// Labelled `gpu`: needs a CUDA device and fails (never skips) without one. Tolerances are stated beside
// each check; "bf16 rounding" means one rounding of an f32 result to bf16 (2^-8 relative) that can land
// on the other side when the f32 values differ in the last bits.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/adamw.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/embedding.hpp"
#include "kernels/rmsnorm.hpp"
#include "kernels/rope.hpp"
#include "kernels/swiglu.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using kernels::Context;

namespace {
const Context cpu = Context::cpu();
double max_abs(const Tensor& t) { return test::max_error(t, Tensor::host_zeros(t.shape(), t.dtype())); }
bool same_bits(const Tensor& a, const Tensor& b) { return std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0; }
// f32 outputs: a few ulps of the largest value (summation order, FMA contraction, expf vs libm exp).
// bf16 outputs: one bf16 rounding of the largest value on top.
double tol(DType dt, double scale, double f32_rel) { return (dt == DType::bf16 ? 0.0079 : f32_rel) * scale; }
Tensor ids_tensor(std::int64_t n, std::int64_t vocab, std::uint32_t salt) {
  Tensor t = Tensor::host({n}, DType::i32);
  for (std::int64_t i = 0; i < n; ++i) t.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7919 + salt * 31 + i * i) % vocab);
  return t;
}

// Shapes: the bench model's row (2048, packed 16-byte path), an odd width (scalar fallback).
const std::pair<std::int64_t, std::int64_t> kRowShapes[] = {{300, 2048}, {37, 61}};
}  // namespace

TEST(NnParity, RmsNormForward) {
  const Context dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [rows, d] : kRowShapes) {
      const Tensor x = test::random_tensor({rows, d}, dt, 1), w = test::random_tensor({d}, DType::f32, 2);
      Tensor hy = Tensor::host({rows, d}, dt), hr = Tensor::host({rows}, DType::f32);
      Tensor gy = dev.empty({rows, d}, dt), gr = dev.empty({rows}, DType::f32);
      kernels::rmsnorm_forward(cpu, x, w, 1e-6f, hy, hr);
      kernels::rmsnorm_forward(dev, dev.to_here(x), dev.to_here(w), 1e-6f, gy, gr);
      // rstd: f32 sum of squares on the GPU vs double on the CPU: ~sqrt(D) ulps at worst.
      EXPECT_LE(test::max_error(test::to_host(gr), hr), 1e-5 * max_abs(hr)) << dtype_name(dt) << " D=" << d;
      EXPECT_LE(test::max_error(test::to_host(gy), hy), tol(dt, max_abs(hy), 1e-5)) << dtype_name(dt) << " D=" << d;
    }
}

TEST(NnParity, RmsNormBackwardIsCloseAndDeterministic) {
  const Context dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [rows, d] : kRowShapes) {
      const Tensor x = test::random_tensor({rows, d}, dt, 3), w = test::random_tensor({d}, DType::f32, 4);
      const Tensor dy = test::random_tensor({rows, d}, dt, 5);
      Tensor y = Tensor::host({rows, d}, dt), rstd = Tensor::host({rows}, DType::f32);
      kernels::rmsnorm_forward(cpu, x, w, 1e-6f, y, rstd);
      Tensor hdx = Tensor::host({rows, d}, dt), hdw = test::random_tensor({d}, DType::f32, 6);
      Tensor gdx = dev.empty({rows, d}, dt), gdw = dev.to_here(hdw);
      kernels::rmsnorm_backward(cpu, dy, x, w, rstd, hdx, hdw);
      const Tensor gx = dev.to_here(x), gw = dev.to_here(w), gdy = dev.to_here(dy), gr = dev.to_here(rstd);
      kernels::rmsnorm_backward(dev, gdy, gx, gw, gr, gdx, gdw);
      // dx: the row sum s is f32 on the GPU (D terms); 1e-5 of max|dx| covers it.
      EXPECT_LE(test::max_error(test::to_host(gdx), hdx), tol(dt, max_abs(hdx), 1e-5)) << dtype_name(dt) << " D=" << d;
      // dweight: T terms per column summed in a different order (f32 partials vs double): 1e-5 of the
      // largest possible column sum, sum_t |dy x rstd| <= T * max|dy x rstd|.
      double mag = 0;
      for (std::int64_t i = 0; i < rows * d; ++i)
        mag = std::max(mag, std::fabs(test::value(dy, i) * test::value(x, i) * rstd.data<float>()[i / d]));
      EXPECT_LE(test::max_error(test::to_host(gdw), hdw), 1e-5 * mag * rows) << dtype_name(dt) << " D=" << d;
      Tensor again = dev.to_here(test::random_tensor({d}, DType::f32, 6));
      kernels::rmsnorm_backward(dev, gdy, gx, gw, gr, gdx, again);
      EXPECT_TRUE(same_bits(test::to_host(again), test::to_host(gdw))) << "dweight must be bitwise reproducible";
    }
}

TEST(NnParity, SwigluForwardAndBackward) {
  const Context dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [rows, h] : {std::pair<std::int64_t, std::int64_t>{129, 1408}, {17, 45}}) {
      const Tensor gu = test::random_tensor({rows, 2 * h}, dt, 7, 2.0f), dout = test::random_tensor({rows, h}, dt, 8);
      Tensor ho = Tensor::host({rows, h}, dt), go = dev.empty({rows, h}, dt);
      kernels::swiglu_forward(cpu, gu, ho);
      kernels::swiglu_forward(dev, dev.to_here(gu), go);
      // Same f32 expression on both sides; expf differs by an ulp or two from libm and the GPU may fuse.
      EXPECT_LE(test::max_error(test::to_host(go), ho), tol(dt, max_abs(ho), 2e-6)) << dtype_name(dt) << " H=" << h;
      Tensor hg = Tensor::host({rows, 2 * h}, dt), gg = dev.to_here(gu);
      kernels::swiglu_backward(cpu, dout, gu, hg);
      kernels::swiglu_backward(dev, dev.to_here(dout), gg, gg);  // in place on the device
      EXPECT_LE(test::max_error(test::to_host(gg), hg), tol(dt, max_abs(hg), 2e-6)) << dtype_name(dt) << " H=" << h;
    }
}

TEST(NnParity, RopeForwardAndBackwardOnMlaSlices) {
  const Context dev = test::gpu_context();
  const kernels::RopeConfig yarn{.rope_dim = 64, .factor = 40.0};
  const auto htab = kernels::rope_tables(cpu, yarn, 8192), gtab = kernels::rope_tables(dev, yarn, 8192);
  // q: [T, heads, 192] with the rope slice at 128 (packed); kv_a output row [T, 576] at 512; an odd
  // 2-D layout (row 67, offset 3) for the scalar fallback.
  const Shape shapes[] = {{64, 16, 192}, {64, 576}, {64, 67}};
  const std::int64_t offsets[] = {128, 512, 3};
  for (DType dt : {DType::f32, DType::bf16})
    for (int c = 0; c < 3; ++c) {
      const Tensor x = test::random_tensor(shapes[c], dt, 9), pos = ids_tensor(64, 8192, 1);
      const Tensor hpos = pos, gpos = dev.to_here(pos);
      Tensor hx = cpu.to_here(x), gx = dev.to_here(x);
      kernels::rope_forward(cpu, hx, hpos, htab, offsets[c]);
      kernels::rope_forward(dev, gx, gpos, gtab, offsets[c]);
      // |x| <= ~5 (normal data): a rotation is two products and a sum, a few f32 ulps of |x|.
      EXPECT_LE(test::max_error(test::to_host(gx), hx), tol(dt, max_abs(hx), 1e-6)) << dtype_name(dt) << " " << shapes[c].str();
      kernels::rope_backward(cpu, hx, hpos, htab, offsets[c]);
      kernels::rope_backward(dev, gx, gpos, gtab, offsets[c]);
      EXPECT_LE(test::max_error(test::to_host(gx), hx), tol(dt, max_abs(hx), 1e-6)) << dtype_name(dt) << " " << shapes[c].str();
    }
}

TEST(NnParity, CrossEntropyForwardAndInPlaceBackward) {
  const Context dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [rows, v] : {std::pair<std::int64_t, std::int64_t>{8, 102400}, {5, 1001}}) {
      const Tensor logits = test::random_tensor({rows, v}, dt, 10, 3.0f);
      Tensor tg = ids_tensor(rows, v, 2);
      tg.data<std::int32_t>()[1] = -1;                         // an ignored token
      tg.data<std::int32_t>()[2] = kernels::kTargetElsewhere;  // a target in another vocabulary shard
      Tensor hl = Tensor::host({rows}, DType::f32), hlse = Tensor::host({rows}, DType::f32);
      Tensor gl = dev.empty({rows}, DType::f32), glse = dev.empty({rows}, DType::f32);
      const Tensor glogits = dev.to_here(logits), gtg = dev.to_here(tg);
      kernels::cross_entropy_forward(cpu, logits, tg, hl, hlse);
      kernels::cross_entropy_forward(dev, glogits, gtg, gl, glse);
      // lse ~ 15: f32 online sum of V exponentials vs a double sum: 2e-6 of |lse| plus 1e-5 absolute.
      EXPECT_LE(test::max_error(test::to_host(glse), hlse), 2e-6 * max_abs(hlse) + 1e-5) << dtype_name(dt) << " V=" << v;
      EXPECT_LE(test::max_error(test::to_host(gl), hl), 2e-6 * max_abs(hlse) + 1e-5) << dtype_name(dt) << " V=" << v;
      Tensor dloss = test::random_tensor({rows}, DType::f32, 11);
      Tensor hd = Tensor::host({rows, v}, dt);
      kernels::cross_entropy_backward(cpu, logits, tg, hlse, dloss, hd);
      Tensor gd = dev.to_here(logits);
      kernels::cross_entropy_backward(dev, gd, gtg, dev.to_here(hlse), dev.to_here(dloss), gd);  // in place
      // p = exp(x - lse) <= 1, f32 expf vs libm: 1e-6 of |dloss| absolute; bf16: one rounding of max|dlogit|.
      const double scale = std::max(max_abs(hd), max_abs(dloss));
      EXPECT_LE(test::max_error(test::to_host(gd), hd), tol(dt, scale, 1e-6)) << dtype_name(dt) << " V=" << v;
    }
}

TEST(NnParity, AdamWThreeStepsWithDecayScaleAndBf16Copy) {
  const Context dev = test::gpu_context();
  for (std::int64_t n : {1 << 20, 1001}) {
    Tensor hp = test::random_tensor({n}, DType::f32, 12), hm = Tensor::host_zeros({n}, DType::f32);
    Tensor hv = Tensor::host_zeros({n}, DType::f32), hb = Tensor::host({n}, DType::bf16);
    Tensor gp = dev.to_here(hp), gm = dev.zeros({n}, DType::f32), gv = dev.zeros({n}, DType::f32);
    Tensor gb = dev.empty({n}, DType::bf16);
    for (int step = 1; step <= 3; ++step) {
      const Tensor g = test::random_tensor({n}, DType::f32, 13 + step);
      const kernels::AdamWOptions o{.lr = 1e-3f, .weight_decay = 0.1f, .step = step, .grad_scale = 0.7f};
      kernels::adamw_step(cpu, hp, g, hm, hv, o, hb);
      kernels::adamw_step(dev, gp, dev.to_here(g), gm, gv, o, gb);
    }
    // Same f32 update on both sides (kernels/adamw.hpp); the GPU may fuse multiply-adds and sqrtf is
    // correctly rounded on both: a few ulps of |p| ~ 1 after three steps.
    EXPECT_LE(test::max_error(test::to_host(gp), hp), 1e-6 * max_abs(hp)) << "n=" << n;
    EXPECT_LE(test::max_error(test::to_host(gm), hm), 1e-6 * max_abs(hm)) << "n=" << n;
    EXPECT_LE(test::max_error(test::to_host(gv), hv), 1e-6 * max_abs(hv)) << "n=" << n;
    EXPECT_LE(test::max_error(test::to_host(gb), hb), 0.0079 * max_abs(hp)) << "n=" << n;
  }
}

TEST(NnParity, EmbeddingForwardAndBackwardAreBitExact) {
  const Context dev = test::gpu_context();
  for (DType dt : {DType::f32, DType::bf16})
    for (auto [vocab, d] : {std::pair<std::int64_t, std::int64_t>{1000, 2048}, {50, 33}}) {
      const std::int64_t rows = 777;
      const Tensor table = test::random_tensor({vocab, d}, DType::f32, 14);
      Tensor ids = ids_tensor(rows, vocab, 3);
      for (std::int64_t t = 0; t < rows; t += 3) ids.data<std::int32_t>()[t] = 7;  // one long run
      for (std::int64_t t = 1; t < rows; t += 10) ids.data<std::int32_t>()[t] = -1;  // rows of another shard
      Tensor ho = Tensor::host({rows, d}, dt), go = dev.empty({rows, d}, dt);
      const Tensor gids = dev.to_here(ids);
      kernels::embedding_forward(cpu, table, ids, ho);
      kernels::embedding_forward(dev, dev.to_here(table), gids, go);
      EXPECT_TRUE(same_bits(test::to_host(go), ho)) << "a copy with one conversion: bit-exact";
      const Tensor dout = test::random_tensor({rows, d}, dt, 15);
      Tensor hdt = test::random_tensor({vocab, d}, DType::f32, 16), gdt = dev.to_here(hdt);
      kernels::embedding_backward(cpu, dout, ids, hdt);
      kernels::embedding_backward(dev, dev.to_here(dout), gids, gdt);
      // Both sum each id's rows in token order in f32 (adds only, nothing to fuse), then add once.
      EXPECT_TRUE(same_bits(test::to_host(gdt), hdt)) << dtype_name(dt) << " D=" << d;
    }
}
