// CPU reference SwiGLU: rows in parallel, the element math shared with CUDA (kernels/swiglu_math.hpp).
#include "kernels/cpu/swiglu.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/swiglu_math.hpp"

namespace r1::kernels::cpu {

void swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  const std::int64_t rows = out.dim(0), h = out.dim(1);
  with_float_type(gate_up.dtype(), "swiglu_forward", [&](auto tag) {
    using T = decltype(tag);
    const T* gu = gate_up.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t t = 0; t < rows; ++t)
      for (std::int64_t j = 0; j < h; ++j)
        po[t * h + j] = store_as<T>(detail::swiglu(load_f32(gu[t * 2 * h + j]), load_f32(gu[t * 2 * h + h + j])));
  });
}

void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const std::int64_t rows = dout.dim(0), h = dout.dim(1);
  with_float_type(gate_up.dtype(), "swiglu_backward", [&](auto xtag) {
    with_float_type(dout.dtype(), "swiglu_backward", [&](auto gtag) {
      using X = decltype(xtag);
      using G = decltype(gtag);
      const X* gu = gate_up.data<X>();
      const G* pd = dout.data<G>();
      G* pg = dgate_up.data<G>();
#pragma omp parallel for schedule(static)
      for (std::int64_t t = 0; t < rows; ++t)
        for (std::int64_t j = 0; j < h; ++j) {
          float dg, du;
          detail::swiglu_grad(load_f32(gu[t * 2 * h + j]), load_f32(gu[t * 2 * h + h + j]), load_f32(pd[t * h + j]),
                              dg, du);
          pg[t * 2 * h + j] = store_as<G>(dg);
          pg[t * 2 * h + h + j] = store_as<G>(du);
        }
    });
  });
}

}  // namespace r1::kernels::cpu
