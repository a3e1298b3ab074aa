// The op table's reference mode (tests/kernels/op_cases.hpp): the CPU run of every case that gives a naive loop
// against it, within the naive side's tolerance. Also the table's own rule: case names are unique.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kernels/op_cases.hpp"

using namespace r1;
using test::OpCase;

TEST(OpTable, CaseNamesAreUniqueTestNames) {
  std::set<std::string> seen;
  for (const OpCase& c : test::op_cases())
    EXPECT_TRUE(seen.insert(test::test_name(c)).second) << c.name() << " as " << test::test_name(c);
}

class OpReference : public testing::TestWithParam<OpCase> {};

TEST_P(OpReference, CpuMatchesTheNaiveLoop) {
  const OpCase& c = GetParam();
  const test::Run run = c.bind(kernels::Context::cpu());
  run.op();
  const std::vector<test::Output> got = run.outputs();
  for (const test::Output& want : c.naive()) {
    const auto it = std::find_if(got.begin(), got.end(), [&](const test::Output& o) { return o.name == want.name; });
    ASSERT_NE(it, got.end()) << "the run has no output " << want.name;
    EXPECT_EQ(test::mismatch(*it, want), "");
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpReference,
                         testing::ValuesIn(test::op_cases_where([](const OpCase& c) { return bool(c.naive); })),
                         [](const testing::TestParamInfo<OpCase>& info) { return test::test_name(info.param); });
