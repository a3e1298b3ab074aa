#include "model/mlp.hpp"

#include "kernels/swiglu.hpp"
#include "model/linear.hpp"

namespace r1 {

DenseMlp::DenseMlp(ParamStore& params, const std::string& prefix, std::int64_t dim, std::int64_t inter, TpGroup tp)
    : dim_(dim),
      inter_(inter / tp.size()),
      gate_up_(use_fp8(params, params.add_split(prefix + ".gate_up", {2 * inter, dim}, {.dim = 0, .groups = 2}, tp.rank(),
                                                tp.size(), Init::normal))),
      down_(use_fp8(params, params.add_split(prefix + ".down", {dim, inter}, {.dim = 1}, tp.rank(), tp.size(), Init::normal))) {}

DenseMlp::Saved DenseMlp::hidden(const kernels::Context& ctx, const Tensor& x) const {
  R1_REQUIRE(x.rank() == 2 && x.dim(1) == dim_, "mlp ", gate_up_.name, ": x must be [T, ", dim_, "], got ", x.str());
  const std::int64_t t = x.dim(0);
  Saved s{x, ctx.empty({t, 2 * inter_}, x.dtype()), ctx.empty({t, inter_}, x.dtype()), std::nullopt};
  linear_forward(ctx, x, gate_up_, s.gate_up);
  if (down_.fp8) {
    s.h_fp8 = linear_input_tiles(ctx, t, inter_, down_);
    kernels::swiglu_forward_fp8(ctx, s.gate_up, s.h, *s.h_fp8);
  } else {
    kernels::swiglu_forward(ctx, s.gate_up, s.h);
  }
  return s;
}

void DenseMlp::project(const kernels::Context& ctx, Saved& s, const Tensor& out, bool accumulate) const {
  R1_REQUIRE(out.shape() == s.x.shape(), "mlp ", gate_up_.name, ": out must be shaped like x ", s.x.str(), ", got ",
             out.str());
  if (s.h_fp8) linear_forward(ctx, *s.h_fp8, down_, out, accumulate);
  else linear_forward(ctx, s.h, down_, out, accumulate);
  s.h_fp8.reset();  // not kept for the backward
}

DenseMlp::Saved DenseMlp::forward(const kernels::Context& ctx, const Tensor& x, const Tensor& out,
                                  bool accumulate) const {
  Saved s = hidden(ctx, x);
  project(ctx, s, out, accumulate);
  return s;
}

Tensor DenseMlp::backward_weights(const kernels::Context& ctx, const Saved& s, const Tensor& dout) const {
  R1_REQUIRE(dout.shape() == s.x.shape(), "mlp ", gate_up_.name, ": dout must be shaped like x ", s.x.str(), ", got ",
             dout.str());
  const std::int64_t t = s.x.dim(0);
  const Tensor dh = ctx.empty({t, inter_}, dout.dtype());
  linear_dgrad(ctx, dout, down_, dh, false);
  linear_wgrad(ctx, dout, s.h, down_);
  const Tensor dgate_up = ctx.empty({t, 2 * inter_}, dout.dtype());  // not in place: `s` may be replayed
  kernels::swiglu_backward(ctx, dh, s.gate_up, dgate_up);
  linear_wgrad(ctx, dgate_up, s.x, gate_up_);
  return dgate_up;
}

void DenseMlp::backward_input(const kernels::Context& ctx, const Saved& s, const Tensor& dgate_up, const Tensor& dx,
                              bool accumulate) const {
  R1_REQUIRE(dx.shape() == s.x.shape(), "mlp ", gate_up_.name, ": dx must be shaped like x ", s.x.str(), ", got ",
             dx.str());
  linear_dgrad(ctx, dgate_up, gate_up_, dx, accumulate);
}

void DenseMlp::backward(const kernels::Context& ctx, const Saved& s, const Tensor& dout, const Tensor& dx,
                        bool accumulate) const {
  backward_input(ctx, s, backward_weights(ctx, s, dout), dx, accumulate);
}

}  // namespace r1
