// The op table's GPU mode (tests/kernels/op_cases.hpp): every case on CUDA against the CPU reference, each output
// within the tolerance the case states for it (computed from the CPU run), and outputs marked repeatable the same
// bits on a second GPU run. Labelled `gpu`: needs a CUDA device and fails (never skips) without one.
#include <gtest/gtest.h>

#include "kernels/op_cases.hpp"
#include "kernels/test_util.hpp"

using namespace r1;
using test::OpCase;

namespace {
std::vector<test::Output> run_on(const OpCase& c, const kernels::Context& ctx) {
  const test::Run run = c.bind(ctx);
  run.op();
  return run.outputs();
}
}  // namespace

class OpParity : public testing::TestWithParam<OpCase> {};

TEST_P(OpParity, CudaMatchesCpu) {
  const OpCase& c = GetParam();
  const kernels::Context dev = test::gpu_context();
  const std::vector<test::Output> ref = run_on(c, kernels::Context::cpu()), got = run_on(c, dev);
  ASSERT_EQ(got.size(), ref.size());
  bool repeatable = false;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(test::mismatch(got[i], ref[i]), "");
    repeatable = repeatable || ref[i].tol.repeatable;
  }
  if (!repeatable) return;
  const std::vector<test::Output> again = run_on(c, dev);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (ref[i].tol.repeatable) {
      EXPECT_EQ(test::bits_differ(again[i], got[i]), "");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpParity, testing::ValuesIn(test::op_cases()),
                         [](const testing::TestParamInfo<OpCase>& info) { return test::test_name(info.param); });
