// The op table's finite-difference mode (tests/kernels/op_cases.hpp): for every case with a backward check, each
// input's analytic gradient (the op's CPU backward) against central differences of the case's loss
// (tests/kernels/gradcheck.hpp), within the input's relative bound.
#include <gtest/gtest.h>

#include "kernels/gradcheck.hpp"
#include "kernels/op_cases.hpp"

using namespace r1;
using test::OpCase;

class OpGrad : public testing::TestWithParam<OpCase> {};

TEST_P(OpGrad, BackwardMatchesFiniteDifferences) {
  const test::GradCheck g = GetParam().grad();
  for (const test::GradInput& in : g.inputs) {
    const test::GradCheckResult r = test::gradcheck(g.loss, in.x, in.analytic, in.eps);
    EXPECT_LE(r.relative(), in.max_relative)
        << in.name << ": max error " << r.max_abs_error << " of max gradient " << r.max_abs_grad;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpGrad,
                         testing::ValuesIn(test::op_cases_where([](const OpCase& c) { return bool(c.grad); })),
                         [](const testing::TestParamInfo<OpCase>& info) { return test::test_name(info.param); });
