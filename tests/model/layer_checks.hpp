// The checks every attention-layer test shares (tests/model/mla_test.cpp, gqa_test.cpp) on a layer case S with
// members cfg (ModelConfig), params (ParamStore, f32 CPU), layer (forward / backward), b (BatchShape), x (the
// input [T, D]) and w (the weights of the loss L = sum(w * out)).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/gradcheck.hpp"
#include "kernels/test_util.hpp"
#include "model/batch.hpp"

namespace r1::test {

// The layer tests' batch: B = 2 sequences of S = 6 tokens; with `segments` packed samples (sequence 0: segments
// of 2 and 4 tokens, sequence 1: 3 and 3, positions restarting), else spread-out positions 3 s + 2 b (past a
// short original context, so YaRN and llama3 bands matter).
inline BatchShape layer_batch(bool segments) {
  BatchShape b;
  b.batch = 2;
  b.seq = 6;
  const std::int64_t t = b.tokens();
  b.positions = Tensor::host({t}, DType::i32);
  if (segments) {
    b.segment_ids = Tensor::host({b.batch, b.seq}, DType::i32);
    const int seg[12] = {0, 0, 1, 1, 1, 1, 5, 5, 5, 6, 6, 6};
    const int pos[12] = {0, 1, 0, 1, 2, 3, 0, 1, 2, 0, 1, 2};
    for (int i = 0; i < 12; ++i) {
      b.segment_ids.data<std::int32_t>()[i] = seg[i];
      b.positions.data<std::int32_t>()[i] = pos[i];
    }
  } else {
    for (std::int64_t i = 0; i < t; ++i) b.positions.data<std::int32_t>()[i] = static_cast<std::int32_t>(3 * (i % b.seq) + 2 * (i / b.seq));
  }
  return b;
}

// sum_i w_i * out_i of the layer's forward, in double.
template <class S>
double layer_loss(const S& s) {
  Tensor out = Tensor::host({s.b.tokens(), s.cfg.dim}, DType::f32);
  s.layer.forward(kernels::Context::cpu(), s.b, s.x, out);
  const Tensor& w = s.w;
  double l = 0;
  for (std::int64_t i = 0; i < out.numel(); ++i) l += static_cast<double>(w.data<float>()[i]) * out.data<float>()[i];
  return l;
}

// The layer's forward against `ref` (the definition in double, [T * D]): within 1e-5 of its largest magnitude.
template <class S>
void expect_forward_matches(const S& s, const std::vector<double>& ref) {
  Tensor out = Tensor::host({s.b.tokens(), s.cfg.dim}, DType::f32);
  s.layer.forward(kernels::Context::cpu(), s.b, s.x, out);
  double err = 0, mag = 0;
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    err = std::max(err, std::fabs(out.data<float>()[i] - ref[static_cast<std::size_t>(i)]));
    mag = std::max(mag, std::fabs(ref[static_cast<std::size_t>(i)]));
  }
  EXPECT_GT(mag, 0.1);
  EXPECT_LE(err, 1e-5 * mag) << "max |out - reference| " << err << " of max |reference| " << mag;
}

// Runs backward with dout = w into a NaN-filled dx (so an unwritten element shows).
template <class S>
Tensor run_backward(S& s) {
  const kernels::Context cpu = kernels::Context::cpu();
  Tensor out = Tensor::host({s.b.tokens(), s.cfg.dim}, DType::f32), dx = Tensor::host(out.shape(), DType::f32);
  const auto saved = s.layer.forward(cpu, s.b, s.x, out);
  kernels::fill(cpu, dx, std::numeric_limits<float>::quiet_NaN());
  s.layer.backward(cpu, s.b, saved, s.w, dx);
  return dx;
}

// Central differences of L (eps 1e-2; f32 forward, double sum): tolerance 2e-3 of the largest gradient, as in
// the op table (op_cases_nn.cpp). Big tensors are checked on a strided subset.
template <class S>
void expect_gradients_match_finite_differences(S& s) {
  const Tensor dx = run_backward(s);
  const auto loss = [&] { return layer_loss(s); };
  const auto rx = gradcheck(loss, s.x, dx, 1e-2);
  EXPECT_LE(rx.relative(), 2e-3) << "dx: max error " << rx.max_abs_error << " of " << rx.max_abs_grad;
  for (const auto& p : s.params.all()) {
    const std::int64_t stride = p->master.numel() > 64 ? p->master.numel() / 48 | 1 : 1;
    const auto r = gradcheck(loss, p->master, p->grad, 1e-2, stride);
    EXPECT_GT(r.max_abs_grad, 0.0) << p->name;
    EXPECT_LE(r.relative(), 2e-3) << p->name << ": max error " << r.max_abs_error << " of " << r.max_abs_grad;
  }
}

// A second backward doubles every parameter gradient and overwrites dx with the same values.
template <class S>
void expect_gradients_accumulate_and_dx_overwritten(S& s) {
  const Tensor dx1 = run_backward(s);
  std::vector<Tensor> once;
  for (const auto& p : s.params.all()) once.push_back(kernels::Context::cpu().to_here(p->grad));
  const Tensor dx2 = run_backward(s);
  EXPECT_EQ(max_error(dx1, dx2), 0.0);
  for (std::size_t i = 0; i < once.size(); ++i) {
    const Tensor& g = s.params.all()[i]->grad;
    double err = 0, mag = 0;
    for (std::int64_t j = 0; j < g.numel(); ++j) {
      err = std::max(err, std::fabs(value(g, j) - 2 * value(once[i], j)));
      mag = std::max(mag, std::fabs(value(once[i], j)));
    }
    EXPECT_GT(mag, 0.0) << s.params.all()[i]->name;
    EXPECT_LE(err, 1e-6 * mag) << s.params.all()[i]->name;
  }
}

template <class S>
void expect_wrong_input_shape_refused(S& s) {
  Tensor x = Tensor::host({s.b.tokens(), s.cfg.dim + 1}, DType::f32), out = Tensor::host(x.shape(), DType::f32);
  EXPECT_THROW(s.layer.forward(kernels::Context::cpu(), s.b, x, out), Error);
}

}  // namespace r1::test
