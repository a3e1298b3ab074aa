// The collective tests of the Communicator interface, written once; each backend's test executable
// instantiates them: INSTANTIATE_TYPED_TEST_SUITE_P(<Name>, Collectives, <traits>).
#pragma once
#include <chrono>
#include <thread>

#include "kernels/elementwise.hpp"
#include "parallel/collective_suite.hpp"

namespace r1::parallel::test {

TYPED_TEST_SUITE_P(Collectives);

TYPED_TEST_P(Collectives, BundleGroupsAreTheMeshGroups) {
  const CommBundle& b = TestFixture::bundle();
  for (GroupKind k : kGroupKinds) {
    Communicator& c = b.group(k);
    EXPECT_EQ(c.backend(), TypeParam::backend);
    EXPECT_EQ(c.members(), b.mesh.group(k)) << group_kind_name(k);
    EXPECT_EQ(c.rank(), b.mesh.group_rank(k)) << group_kind_name(k);
    EXPECT_EQ(c.size(), b.mesh.size(k)) << group_kind_name(k);
    EXPECT_EQ(c.name(), std::string(group_kind_name(k)) + "[" + format_ranks(b.mesh.group(k)) + "]");
    // The transport agrees: the sum of the members' global ranks.
    const Tensor r = TestFixture::here(host_of<std::int64_t>(1, [&](std::int64_t) { return b.mesh.rank(); }));
    c.all_reduce(r);
    double expected = 0;
    for (int m : c.members()) expected += m;
    EXPECT_EQ(values_of<std::int64_t>(c, r), std::vector<double>{expected}) << c.name();
  }
}

TYPED_TEST_P(Collectives, AllReduceSumsEveryReducibleDtype) {
  TestFixture::template check_all_reduce<float>(ReduceOp::sum, 1);
  TestFixture::template check_all_reduce<bf16>(ReduceOp::sum, 2);
  TestFixture::template check_all_reduce<double>(ReduceOp::sum, 3);
  TestFixture::template check_all_reduce<std::int32_t>(ReduceOp::sum, 4);
  TestFixture::template check_all_reduce<std::int64_t>(ReduceOp::sum, 5);
  TestFixture::template check_all_reduce<std::uint8_t>(ReduceOp::sum, 6);
}

TYPED_TEST_P(Collectives, AllReduceTakesTheMaxAndTheMin) {
  TestFixture::template check_all_reduce<float>(ReduceOp::max, 7);
  TestFixture::template check_all_reduce<bf16>(ReduceOp::min, 8);
  TestFixture::template check_all_reduce<std::int32_t>(ReduceOp::min, 9);
  TestFixture::template check_all_reduce<std::uint8_t>(ReduceOp::max, 10);
  TestFixture::template check_all_reduce<double>(ReduceOp::min, 11);
}

// Values in [1, 2) with 7 fraction bits: each is exact in bf16 but their sums need rounding. The
// reference is the exact sum rounded once; the backend states how far it may be from that.
TYPED_TEST_P(Collectives, Bf16SumIsTheRoundedSumWithinTheStatedError) {
  TestFixture::for_each_group([&](Communicator& c) {
    const std::int64_t n = 64;
    const auto v = [](int r, std::int64_t i) { return 1.0 + static_cast<double>((r * 5 + i * 3) % 128) / 128; };
    const Tensor buf = TestFixture::here(host_of<bf16>(n, [&](std::int64_t i) { return v(c.members()[c.rank()], i); }));
    c.all_reduce(buf);
    const std::vector<double> got = values_of<bf16>(c, buf);
    for (std::int64_t i = 0; i < n; ++i) {
      double exact = 0;
      for (int m : c.members()) exact += v(m, i);
      const double rounded = to_float(to_bf16(static_cast<float>(exact)));
      const double ulp = std::ldexp(1.0, std::ilogb(rounded) - 7);
      EXPECT_LE(std::fabs(got[i] - rounded), TypeParam::bf16_sum_ulps(c.size()) * ulp)
          << "element " << i << " on " << c.name() << ": exact sum " << exact;
    }
  });
}

TYPED_TEST_P(Collectives, ReduceScatterKeepsThisRanksBlockOfTheSum) {
  TestFixture::template check_reduce_scatter<float>(12);
  TestFixture::template check_reduce_scatter<bf16>(13);
  TestFixture::template check_reduce_scatter<std::int64_t>(14);
}

TYPED_TEST_P(Collectives, AllGatherConcatenatesInRankOrder) {
  TestFixture::template check_all_gather<float>(15);
  TestFixture::template check_all_gather<std::int32_t>(16);
  TestFixture::template check_all_gather<std::uint8_t>(17);
  TestFixture::template check_all_gather<f8e4m3>(18);
}

TYPED_TEST_P(Collectives, AllToAllSendsBlockPToRankP) {
  TestFixture::template check_all_to_all<float>();
  TestFixture::template check_all_to_all<bf16>();
}

TYPED_TEST_P(Collectives, AllToAllvMovesUnevenAndEmptyBlocksToTheirOffsets) {
  TestFixture::template check_all_to_allv<float>();
  TestFixture::template check_all_to_allv<std::int64_t>();
}

// Started ops (overlap with compute) give the blocking ops' results once finished.
TYPED_TEST_P(Collectives, StartedOpsGiveTheBlockingResults) {
  TestFixture::template check_all_reduce<float>(ReduceOp::sum, 31, true);
  TestFixture::template check_all_reduce<bf16>(ReduceOp::sum, 32, true);
  TestFixture::template check_reduce_scatter<float>(33, true);
  TestFixture::template check_reduce_scatter<bf16>(34, true);
  TestFixture::template check_all_to_allv<float>(true);
  TestFixture::template check_all_to_allv<bf16>(true);
}

// The caller drops a started op's buffers and scribbles over freshly allocated memory of their size
// (where a freed buffer would be handed out again): the communicator still holds them. Group rank 0
// starts late, so on the others the ops are still in flight meanwhile. Two ops started back to back
// complete, and a blocking op finishes both before it runs; compute queued after it (a copy on the
// compute stream) sees their results.
TYPED_TEST_P(Collectives, StartedOpsKeepTheirBuffersAndABlockingOpFinishesThem) {
  const kernels::Context& ctx = TestFixture::ctx();
  TestFixture::for_each_group([&](Communicator& c) {
    if (c.rank() == 0 && c.size() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const std::int64_t n = 4096;  // per peer
    const int me = c.members()[c.rank()];
    const Tensor out = ctx.zeros({n * c.size()}, DType::f32);
    const Tensor sum = TestFixture::template input<float>(c, n, 41);
    {
      const Tensor in = TestFixture::here(
          host_of<float>(n * c.size(), [&](std::int64_t i) { return TestFixture::block_value(me, c.members()[i / n], i % n); }));
      const std::vector<std::int64_t> counts(c.size(), n), displs = packed_displacements(counts);
      c.start_all_to_allv(in, counts, displs, out, counts, displs);
    }
    c.start_all_reduce(sum);
    for (int k = 0; k < 4; ++k) {
      const Tensor junk = ctx.empty({n * c.size()}, DType::f32);
      copy(junk, host_of<float>(n * c.size(), [](std::int64_t) { return -7.0; }));
    }
    EXPECT_TRUE(c.has_started());
    const Tensor after = TestFixture::template input<std::int64_t>(c, 3, 42);
    c.all_reduce(after);
    EXPECT_FALSE(c.has_started()) << c.name();
    const Tensor out_then = ctx.empty(out.shape(), DType::f32), sum_then = ctx.empty(sum.shape(), DType::f32);
    kernels::cast(ctx, out, out_then);
    kernels::cast(ctx, sum, sum_then);
    std::vector<double> expected_out, expected_sum(n, 0.0), expected_after(3, 0.0);
    for (int src : c.members())
      for (std::int64_t j = 0; j < n; ++j) expected_out.push_back(TestFixture::block_value(src, me, j));
    for (int m : c.members()) {
      for (std::int64_t i = 0; i < n; ++i) expected_sum[i] += sample<float>(m, i, 41);
      for (std::int64_t i = 0; i < 3; ++i) expected_after[i] += sample<std::int64_t>(m, i, 42);
    }
    EXPECT_EQ(values_of<float>(c, out_then), expected_out) << "started all_to_allv on " << c.name();
    EXPECT_EQ(values_of<float>(c, sum_then), expected_sum) << "started all_reduce on " << c.name();
    EXPECT_EQ(values_of<std::int64_t>(c, after), expected_after) << "blocking all_reduce on " << c.name();
  });
}

// finish_started(n) finishes the ops started up to the n-th and leaves the later ones in flight (the passes
// of an overlapped pipeline pair each wait for their own exchange): compute queued after it sees the first
// op's result; finish_started() then completes the second.
TYPED_TEST_P(Collectives, FinishingUpToAStartedOpLeavesTheLaterOnesInFlight) {
  const kernels::Context& ctx = TestFixture::ctx();
  TestFixture::for_each_group([&](Communicator& c) {
    const std::int64_t n = 1024;  // per peer
    const int me = c.members()[c.rank()];
    const Tensor out = ctx.zeros({n * c.size()}, DType::f32);
    const Tensor in = TestFixture::here(
        host_of<float>(n * c.size(), [&](std::int64_t i) { return TestFixture::block_value(me, c.members()[i / n], i % n); }));
    const std::vector<std::int64_t> counts(c.size(), n), displs = packed_displacements(counts);
    c.start_all_to_allv(in, counts, displs, out, counts, displs);
    const std::int64_t first = c.ops_started();
    const Tensor sum = TestFixture::template input<float>(c, n, 43);
    c.start_all_reduce(sum);
    c.finish_started(first);
    EXPECT_TRUE(c.has_started()) << c.name();
    const Tensor out_then = ctx.empty(out.shape(), DType::f32);
    kernels::cast(ctx, out, out_then);
    c.finish_started(first);  // nothing left up to it
    EXPECT_TRUE(c.has_started()) << c.name();
    c.finish_started();
    EXPECT_FALSE(c.has_started()) << c.name();
    std::vector<double> expected_out, expected_sum(n, 0.0);
    for (int src : c.members())
      for (std::int64_t j = 0; j < n; ++j) expected_out.push_back(TestFixture::block_value(src, me, j));
    for (int m : c.members())
      for (std::int64_t i = 0; i < n; ++i) expected_sum[i] += sample<float>(m, i, 43);
    EXPECT_EQ(values_of<float>(c, out_then), expected_out) << "all_to_allv finished alone on " << c.name();
    EXPECT_EQ(values_of<float>(c, sum), expected_sum) << "the later all_reduce on " << c.name();
  });
}

TYPED_TEST_P(Collectives, BroadcastFromTheLastRank) {
  TestFixture::template check_broadcast<float>(19);
  TestFixture::template check_broadcast<std::int64_t>(20);
}

TYPED_TEST_P(Collectives, SendRecvPassesAroundTheRing) {
  TestFixture::for_each_group([&](Communicator& c) {
    const int next = (c.rank() + 1) % c.size(), prev = (c.rank() + c.size() - 1) % c.size();
    const Tensor out = TestFixture::template input<float>(c, 9, 21);
    const Tensor in = TestFixture::ctx().zeros({9}, DType::f32);
    c.send_recv(out, next, in, prev, 3);
    std::vector<double> expected(9);
    for (std::int64_t i = 0; i < 9; ++i) expected[i] = sample<float>(c.members()[prev], i, 21);
    EXPECT_EQ(values_of<float>(c, in), expected) << "ring on " << c.name();
  });
}

// Ranks 2k and 2k+1 swap buffers with lone sends and receives, ordered so that neither waits on the other.
TYPED_TEST_P(Collectives, SendAndRecvSwapBetweenPairs) {
  TestFixture::for_each_group([&](Communicator& c) {
    const int partner = c.rank() ^ 1;
    if (partner >= c.size()) return;
    const Tensor mine = TestFixture::template input<std::int32_t>(c, 7, 22);
    const Tensor theirs = TestFixture::ctx().zeros({7}, DType::i32);
    if (c.rank() % 2 == 0) {
      c.send(mine, partner, 5);
      c.recv(theirs, partner, 5);
    } else {
      c.recv(theirs, partner, 5);
      c.send(mine, partner, 5);
    }
    std::vector<double> expected(7);
    for (std::int64_t i = 0; i < 7; ++i) expected[i] = sample<std::int32_t>(c.members()[partner], i, 22);
    EXPECT_EQ(values_of<std::int32_t>(c, theirs), expected) << "swap on " << c.name();
  });
}

TYPED_TEST_P(Collectives, BarriersAndEmptyBuffersComplete) {
  TestFixture::for_each_group([&](Communicator& c) {
    const Tensor empty = TestFixture::ctx().zeros({0}, DType::f32), also = TestFixture::ctx().zeros({0}, DType::f32);
    c.barrier();
    c.all_reduce(empty);
    c.all_gather(empty, also);
    c.reduce_scatter(empty, also);
    c.all_to_all(empty, also);
    c.broadcast(empty, 0);
    c.send_recv(empty, (c.rank() + 1) % c.size(), also, (c.rank() + c.size() - 1) % c.size());
    c.barrier();
    c.wait();
  });
}

// Bad arguments are found before anything is sent (so no rank is left waiting), and the message names
// the op and the group.
TYPED_TEST_P(Collectives, BadArgumentsAreUserErrorsNamingTheOpAndGroup) {
  Communicator& c = *TestFixture::bundle().world;
  const kernels::Context& ctx = TestFixture::ctx();
  const std::string on = " on " + c.name();
  const Tensor f8 = ctx.zeros({4}, DType::f8e4m3), small = ctx.zeros({3}, DType::f32);
  const Tensor big = ctx.zeros({4 * c.size() + 1}, DType::f32), i32 = ctx.zeros({4}, DType::i32);
  expect_user_error([&] { c.all_reduce(f8); }, {"all_reduce" + on, "cannot reduce f8e4m3"});
  expect_user_error([&] { c.all_gather(small, big); },
                    {"all_gather" + on, "must be " + std::to_string(c.size()) + " x input"});
  expect_user_error([&] { c.reduce_scatter(big, i32); }, {"reduce_scatter" + on});
  expect_user_error([&] { c.all_to_all(small, i32); }, {"all_to_all" + on});
  const std::vector<std::int64_t> wrong(c.size() + 1, 0);
  expect_user_error([&] { c.all_to_allv(big, wrong, wrong, small, wrong, wrong); },
                    {"all_to_allv" + on, "one entry per rank (" + std::to_string(c.size()) + ")"});
  std::vector<std::int64_t> counts(c.size(), 1), displs(c.size(), 0);
  displs.back() = big.numel();
  expect_user_error([&] { c.all_to_allv(big, counts, displs, big, counts, counts); }, {"all_to_allv" + on, "outside"});
  expect_user_error([&] { c.send(small, c.size(), 0); }, {"send" + on, "peer " + std::to_string(c.size())});
  expect_user_error([&] { c.recv(small, 0, -1); }, {"recv" + on, "tag -1"});
  expect_user_error([&] { c.broadcast(small, -1); }, {"broadcast" + on, "root -1"});
  const Tensor row = ctx.zeros({c.size()}, DType::f32);
  expect_user_error([&] { c.all_gather(row.slice(0, 1), row); }, {"all_gather" + on, "overlap"});
  expect_user_error([&] { c.all_reduce(TypeParam::foreign(4)); },
                    {"all_reduce" + on, "must be in", backend_name(TypeParam::backend)});
}

// Only rank 0 posts a receive, from a rank that never sends: the watchdog must turn the wait into a comm
// error naming the op, the group and the limit. The receive is withdrawn (MPI) or the communicator
// aborted (NCCL), so every rank ends the test cleanly. A communicator of its own (on a context of its
// own) keeps the abandoned op away from the suite's. NCCL refuses a receive from oneself at once
// ("invalid usage"), so on one rank it must fail fast as a comm error naming the op and group; its
// timeout path is exercised from two ranks up (a two-GPU machine).
TYPED_TEST_P(Collectives, TheWatchdogTurnsAnUnmatchedRecvIntoACommError) {
  const kernels::Context ctx = TypeParam::context();
  const std::vector<int> everyone = TestFixture::bundle().mesh.group(GroupKind::world);
  auto c = make_communicator(TypeParam::backend, "watchdog", everyone, ctx, 1.0);
  const bool refused_at_once = TypeParam::backend == Backend::nccl && c->size() == 1;
  if (c->rank() == 0) {
    const Tensor buf = ctx.zeros({4}, DType::f32);
    const Stopwatch clock;
    try {
      c->recv(buf, c->size() - 1, 7);
      c->wait();
      ADD_FAILURE() << "the unmatched recv returned";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::comm) << e.what();
      EXPECT_NE(std::string(e.what()).find("recv on " + c->name()), std::string::npos) << e.what();
      if (!refused_at_once) {
        EXPECT_NE(std::string(e.what()).find("watchdog: recv on " + c->name()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("did not finish within 1 s"), std::string::npos) << e.what();
      }
    }
    if (!refused_at_once) {
      EXPECT_GE(clock.seconds(), 1.0);
    }
    EXPECT_LT(clock.seconds(), 20.0);
  }
  c.reset();
  TestFixture::bundle().world->barrier();
}

REGISTER_TYPED_TEST_SUITE_P(Collectives, BundleGroupsAreTheMeshGroups, AllReduceSumsEveryReducibleDtype,
                            AllReduceTakesTheMaxAndTheMin, Bf16SumIsTheRoundedSumWithinTheStatedError,
                            ReduceScatterKeepsThisRanksBlockOfTheSum, AllGatherConcatenatesInRankOrder,
                            AllToAllSendsBlockPToRankP, AllToAllvMovesUnevenAndEmptyBlocksToTheirOffsets,
                            StartedOpsGiveTheBlockingResults, StartedOpsKeepTheirBuffersAndABlockingOpFinishesThem,
                            FinishingUpToAStartedOpLeavesTheLaterOnesInFlight,
                            BroadcastFromTheLastRank, SendRecvPassesAroundTheRing, SendAndRecvSwapBetweenPairs,
                            BarriersAndEmptyBuffersComplete, BadArgumentsAreUserErrorsNamingTheOpAndGroup,
                            TheWatchdogTurnsAnUnmatchedRecvIntoACommError);

}  // namespace r1::parallel::test
