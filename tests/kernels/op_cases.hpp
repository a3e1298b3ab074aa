// The table of kernel op cases (after ggml's test-backend-ops): each case names an op and a shape/dtype
// configuration, builds its inputs from fixed seeds, runs on any kernels::Context and lists its outputs with
// the tolerance another run must meet. One table, four modes, one binary each: reference (the CPU run against
// a naive loop, where the case gives one: op_reference_test), finite differences (CPU, f32: op_grad_test), GPU
// parity (CPU vs CUDA: op_gpu_test) and benchmark (time, GB/s and TFLOP/s per case: r1hpc-bench-ops).
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"

namespace r1::test {

// How far another run's output may lie from this one's: |got_i - ref_i| <= abs + rel |ref_i| for every element
// (a NaN never passes), or the same bits.
struct Tolerance {
  double abs = 0, rel = 0;
  bool exact = false;       // the same bits
  bool repeatable = false;  // and a second GPU run gives the first one's bits (deterministic kernels)
};
inline Tolerance within(double abs, double rel = 0) { return {.abs = abs, .rel = rel}; }
inline Tolerance bit_exact() { return {.exact = true}; }
inline Tolerance repeatable(Tolerance t) {
  t.repeatable = true;
  return t;
}

// One result of a run: a host copy, with the tolerance other runs are held to when this run is the reference.
struct Output {
  std::string name;
  Tensor value;
  Tolerance tol;
};

// A case bound to a context: its inputs copied there and its outputs allocated.
struct Run {
  Run(std::function<void()> op, std::function<std::vector<Output>()> outputs, double bytes, double flops = 0)
      : op(std::move(op)), outputs(std::move(outputs)), bytes(bytes), flops(flops) {}
  std::function<void()> op;                      // the op's calls, what the benchmark times (may run again)
  std::function<std::vector<Output>()> outputs;  // the results after op
  double bytes;                                  // memory the op must read and write, for GB/s
  double flops;                                  // arithmetic of a matrix op, for TFLOP/s (0: none reported)
};

// A finite-difference check of one input of an op with a backward (test::gradcheck).
struct GradInput {
  GradInput(std::string name, Tensor x, Tensor analytic, double eps = 1e-3, double max_relative = 1e-3)
      : name(std::move(name)), x(std::move(x)), analytic(std::move(analytic)), eps(eps), max_relative(max_relative) {}
  std::string name;
  Tensor x;         // host f32, perturbed in place by the check and restored
  Tensor analytic;  // dL/dx from the op's backward
  double eps;
  double max_relative;  // bound on max |analytic - numeric| / max |numeric|
};
struct GradCheck {
  std::function<double()> loss;  // L from the current contents of the inputs, accumulated in double
  std::vector<GradInput> inputs;
};

struct OpCase {
  OpCase(std::string op, std::string config) : op(std::move(op)), config(std::move(config)) {}
  std::string op;      // "rmsnorm_backward"
  std::string config;  // "bf16 [300, 2048]"
  std::function<Run(const kernels::Context&)> bind;
  // Optional: the outputs by a naive loop (by name, a subset of the run's), with the tolerance the CPU run meets.
  std::function<std::vector<Output>()> naive;
  // Optional: finite-difference checks of the backward (CPU, f32 inputs).
  std::function<GradCheck()> grad;

  std::string name() const { return op + " " + config; }
};

// Every case, in a fixed order. Nothing larger than a few index vectors is computed until a case is bound.
std::vector<OpCase> op_cases();
// The cases `keep` selects (by the optional parts they give, say).
std::vector<OpCase> op_cases_where(bool (*keep)(const OpCase&));
// The case's name as a GoogleTest name: letters, digits and single underscores.
std::string test_name(const OpCase& c);
void PrintTo(const OpCase& c, std::ostream* os);  // GoogleTest prints a case by its name

// The cases of each family (op_cases_*.cpp), appended to `out`.
void add_blas_cases(std::vector<OpCase>& out);       // gemm, grouped_gemm, elementwise, reduce, random, fp8
void add_nn_cases(std::vector<OpCase>& out);         // rmsnorm, swiglu, rope, cross_entropy, adamw, embedding, gather_rows
void add_attention_cases(std::vector<OpCase>& out);  // attention, copy_columns
void add_moe_cases(std::vector<OpCase>& out);        // moe_router, moe_balance, moe_permute

// Helpers for writing cases.
double max_abs(const Tensor& t);                  // max_i |t_i| of a host tensor (f32, bf16 or f8e4m3)
Output output(std::string name, const Tensor& t, Tolerance tol);  // a host copy of t
double bytes_of(std::initializer_list<Tensor> tensors);         // total nbytes
double dot(const Tensor& w, const Tensor& y);                    // sum_i w_i y_i in double (a gradient check's loss)
// "bf16 [300, 2048]"
std::string describe(DType dt, const Shape& shape);
std::string number(double v);  // shortest form: "1.25", "-0.5", "0.0001"
// Where got and ref differ beyond ref.tol ("" when they agree): the first element out of bounds and the largest
// difference. `got` must have ref's shape and dtype.
std::string mismatch(const Output& got, const Output& ref);
// Where a second run's bits differ from the first's ("" when they agree).
std::string bits_differ(const Output& again, const Output& first);

}  // namespace r1::test
