// Pipeline schedules as specifications: each rank's pass order (every pass once, a forward before its
// backward, Megatron's warm-ups, DualPipeV's steps and memory, the ideal bubble the order leaves, refused
// arguments); every rank's program played against blocking point-to-point channels (no deadlock, every
// tensor reaches the pass that needs it); and run_pipeline over MPI on a chain of tanh layers, whose
// weight gradients must equal one rank's sequential ones, with its report and recorded timeline.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "core/error.hpp"
#include "core/interleave.hpp"
#include "parallel/comm.hpp"
#include "train/pipeline_schedule.hpp"
#include "support/pipeline_simulation.hpp"
#include "support/world.hpp"

using namespace r1;

namespace {

using test::world_rank;
using test::world_size;

using Kind = PipelineAction::Kind;
constexpr PipelineSchedule kOneFOneB = PipelineSchedule::one_f_one_b;
constexpr PipelineSchedule kInterleaved = PipelineSchedule::interleaved;
constexpr PipelineSchedule kDualPipeV = PipelineSchedule::dualpipev;

struct Case {
  PipelineSchedule schedule;
  int stages, virtual_stages, micro_batches;
  bool split = false;  // the weight gradient split off into W passes
  bool pairs = false;  // DualPipe's overlapped forward/backward pairs ([parallel] overlap_chunk_pairs)
  int chunks() const { return stages * pipeline_chunks_per_rank(schedule, virtual_stages); }
  int chain() const { return pipeline_chain_length(schedule, stages, virtual_stages); }  // chunks per micro-batch
  int rank_of(int chunk) const { return parallel::chunk_rank(chunk_placement(schedule), chunk, stages); }
  std::vector<int> chunks_of(int rank) const {
    return parallel::rank_chunks(chunk_placement(schedule), rank, stages, chunks());
  }
};

std::string describe(const Case& c) {
  std::ostringstream os;
  os << choice_word(c.schedule) << " stages " << c.stages << " virtual "
     << c.virtual_stages << " micro " << c.micro_batches << (c.split ? " split" : "") << (c.pairs ? " pairs" : "");
  return os.str();
}

std::string describe(const PipelineAction& a) {
  std::ostringstream os;
  os << (a.kind == Kind::forward ? "F" : a.kind == Kind::backward ? "B" : "W") << "(micro " << a.micro << ", chunk " << a.chunk << ")";
  return os.str();
}

// 1F1B on 1-8 stages with 1-16 micro-batches; interleaved with 2-4 virtual stages and 1-4 groups of
// `stages` micro-batches; DualPipeV with 2 stages to 2 stages + 9 micro-batches.
std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) cases.push_back({kOneFOneB, p, 1, m});
    for (int v = 2; v <= 4; ++v)
      for (int groups = 1; groups <= 4; ++groups) cases.push_back({kInterleaved, p, v, groups * p});
    for (int m = 2 * p; m < 2 * p + 10; ++m) cases.push_back({kDualPipeV, p, 1, m});
  }
  return cases;
}

// DualPipeV with the weight gradient split off, on the same stages and micro-batches.
std::vector<Case> split_cases() {
  std::vector<Case> cases;
  for (int p = 1; p <= 8; ++p)
    for (int m = 2 * p; m < 2 * p + 10; ++m) cases.push_back({kDualPipeV, p, 1, m, true});
  return cases;
}

// DualPipe on 2-8 stages with 2 stages to 2 stages + 8 micro-batches (even), without and with the W split.
std::vector<Case> dualpipe_cases() {
  std::vector<Case> cases;
  for (int p = 2; p <= 8; p += 2)
    for (int m = 2 * p; m <= 2 * p + 8; m += 2)
      for (bool split : {false, true}) cases.push_back({PipelineSchedule::dualpipe, p, 1, m, split});
  return cases;
}

// Every DualPipeV and DualPipe case above with the overlapped pairs.
std::vector<Case> paired_cases() {
  std::vector<Case> cases;
  for (const auto& list : {all_cases(), split_cases(), dualpipe_cases()})
    for (Case c : list)
      if (c.schedule == kDualPipeV || c.schedule == PipelineSchedule::dualpipe) {
        c.pairs = true;
        cases.push_back(c);
      }
  return cases;
}

std::vector<PipelineAction> order_of(const Case& c, int rank) {
  return pipeline_order(c.schedule, c.stages, rank, c.virtual_stages, c.micro_batches, c.split);
}

// The message of the user error `f` throws ("" and a failure when it throws none or another kind).
template <class F> std::string user_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user) << e.what();
    return e.message();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(PipelineOrder, RunsEveryPassOfTheRanksChunksOnceAndEachForwardBeforeItsBackward) {
  for (const Case& c : all_cases()) {
    for (int r = 0; r < c.stages; ++r) {
      const std::vector<PipelineAction> order = order_of(c, r);
      std::map<PipelineAction, int> at;
      for (int i = 0; i < static_cast<int>(order.size()); ++i)
        EXPECT_TRUE(at.emplace(order[i], i).second) << describe(c) << " rank " << r << ": " << describe(order[i])
                                                    << " twice";
      const std::vector<int> mine = c.chunks_of(r);
      EXPECT_EQ(order.size(), 2 * mine.size() * c.micro_batches) << describe(c) << " rank " << r;
      for (int chunk : mine) {
        for (int m = 0; m < c.micro_batches; ++m) {
          const PipelineAction f{Kind::forward, m, chunk}, b{Kind::backward, m, chunk};
          ASSERT_TRUE(at.count(f) && at.count(b)) << describe(c) << " rank " << r << ": " << describe(f);
          EXPECT_LT(at[f], at[b]) << describe(c) << " rank " << r << ": " << describe(f);
        }
      }
    }
  }
}

TEST(PipelineOrder, WarmsUpLikeMegatronThenAlternatesForwardAndBackward) {
  for (const Case& c : all_cases()) {
    if (c.schedule == kDualPipeV) continue;
    const int p = c.stages, v = c.virtual_stages, total = v * c.micro_batches;
    for (int r = 0; r < p; ++r) {
      const int warmup = c.schedule == kOneFOneB ? std::min(p - r - 1, total)
                                                 : std::min(2 * (p - r - 1) + (v - 1) * p, total);
      std::vector<Kind> expected(warmup, Kind::forward);
      for (int k = 0; k < total - warmup; ++k) {
        expected.push_back(Kind::forward);
        expected.push_back(Kind::backward);
      }
      expected.insert(expected.end(), warmup, Kind::backward);
      std::vector<Kind> kinds;
      for (const PipelineAction& a : order_of(c, r)) kinds.push_back(a.kind);
      EXPECT_EQ(kinds, expected) << describe(c) << " rank " << r << " (warm-up " << warmup << ")";
    }
  }
}

// The most micro-batch chunks whose forward has run and backward not yet (their activations are held).
int most_in_flight(const std::vector<PipelineAction>& order) {
  int in_flight = 0, most = 0;
  for (const PipelineAction& a : order) {
    in_flight += a.kind == Kind::forward ? 1 : -1;
    most = std::max(most, in_flight);
  }
  return most;
}

// The point of 1F1B: rank r holds the activations of at most stages - r micro-batches at a time.
TEST(PipelineOrder, OneFOneBKeepsAtMostStagesMinusRankMicroBatchesInFlight) {
  for (const Case& c : all_cases()) {
    if (c.schedule != kOneFOneB) continue;
    for (int r = 0; r < c.stages; ++r)
      EXPECT_EQ(most_in_flight(order_of(c, r)), std::min(c.stages - r, c.micro_batches)) << describe(c) << " rank " << r;
  }
}

TEST(PipelineOrder, OneFOneBExample) {
  // 4 stages, 5 micro-batches, rank 1: two warm-up forwards, three steady pairs, two cool-down backwards.
  const std::vector<PipelineAction> order = pipeline_order(kOneFOneB, 4, 1, 1, 5);
  const std::vector<std::pair<Kind, int>> expected = {
      {Kind::forward, 0}, {Kind::forward, 1}, {Kind::forward, 2}, {Kind::backward, 0}, {Kind::forward, 3},
      {Kind::backward, 1}, {Kind::forward, 4}, {Kind::backward, 2}, {Kind::backward, 3}, {Kind::backward, 4}};
  ASSERT_EQ(order.size(), expected.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    EXPECT_EQ(order[i], (PipelineAction{expected[i].first, expected[i].second, 1})) << "pass " << i;
}

TEST(PipelineOrder, InterleavedExample) {
  // 2 stages x 2 virtual stages, 4 micro-batches, rank 0 (chunks 0 and 2): micro-batches in groups of 2,
  // forwards chunk 0 then chunk 2, backwards chunk 2 then chunk 0; warm-up 2 (2 - 0 - 1) + (2 - 1) 2 = 4.
  const std::vector<PipelineAction> order = pipeline_order(kInterleaved, 2, 0, 2, 4);
  const auto F = [](int m, int c) { return PipelineAction{Kind::forward, m, c}; };
  const auto B = [](int m, int c) { return PipelineAction{Kind::backward, m, c}; };
  const std::vector<PipelineAction> expected = {F(0, 0), F(1, 0), F(0, 2), F(1, 2), F(2, 0), B(0, 2),
                                                F(3, 0), B(1, 2), F(2, 2), B(0, 0), F(3, 2), B(1, 0),
                                                B(2, 2), B(3, 2), B(2, 0), B(3, 0)};
  EXPECT_EQ(order, expected);
}

TEST(PipelineOrder, DualPipeVExample) {
  // 2 stages, 4 micro-batches, rank 0 (chunks 0 and 3, the top of the V): 2 forwards down, a pair F0 F1,
  // B1 F1, one steady step F0 B1 F1 B0, then B1 F1 B0, B1 B0 and B0.
  const auto F = [](int m, int c) { return PipelineAction{Kind::forward, m, c}; };
  const auto B = [](int m, int c) { return PipelineAction{Kind::backward, m, c}; };
  const std::vector<PipelineAction> top = {F(0, 0), F(1, 0), F(2, 0), F(0, 3), B(0, 3), F(1, 3), F(3, 0), B(1, 3),
                                           F(2, 3), B(0, 0), B(2, 3), F(3, 3), B(1, 0), B(3, 3), B(2, 0), B(3, 0)};
  EXPECT_EQ(pipeline_order(kDualPipeV, 2, 0, 1, 4), top);
  // Rank 1 (chunks 1 and 2, the turn of the V): two pairs F0 F1, two steady steps, two pairs B1 B0.
  const std::vector<PipelineAction> turn = {F(0, 1), F(0, 2), F(1, 1), F(1, 2), F(2, 1), B(0, 2), F(2, 2), B(0, 1),
                                            F(3, 1), B(1, 2), F(3, 2), B(1, 1), B(2, 2), B(2, 1), B(3, 2), B(3, 1)};
  EXPECT_EQ(pipeline_order(kDualPipeV, 2, 1, 1, 4), turn);
}

// DualPipeV's memory: every rank holds at most 2 stages + 1 chunk micro-batches (the DualPipe README's
// PP + 1 activations over PP = 2 stages chunks), and reaches it.
TEST(PipelineOrder, DualPipeVKeepsAtMostTwoStagesPlusOneChunkMicroBatchesInFlight) {
  for (const Case& c : all_cases()) {
    if (c.schedule != kDualPipeV) continue;
    for (int r = 0; r < c.stages; ++r)
      EXPECT_EQ(most_in_flight(order_of(c, r)), 2 * c.stages + 1) << describe(c) << " rank " << r;
  }
}

TEST(PipelineOrder, RefusesArgumentsNamingTheDeckKeys) {
  EXPECT_NE(user_error([] { pipeline_order(kOneFOneB, 2, 0, 2, 4); }).find("[parallel] virtual_stages"),
            std::string::npos);
  EXPECT_NE(user_error([] { pipeline_order(kInterleaved, 2, 0, 1, 4); }).find("[parallel] virtual_stages"),
            std::string::npos);
  const std::string uneven = user_error([] { pipeline_order(kInterleaved, 4, 0, 2, 6); });
  EXPECT_NE(uneven.find("[train] global_batch"), std::string::npos) << uneven;
  EXPECT_NE(uneven.find("[parallel] pipeline = 4"), std::string::npos) << uneven;
  EXPECT_NE(user_error([] { pipeline_order(kOneFOneB, 2, 0, 1, 0); }).find("[train] global_batch"),
            std::string::npos);
  EXPECT_NE(user_error([] { pipeline_program(kInterleaved, 3, 0, 2, 4); }).find("[train] global_batch"),
            std::string::npos);
  const std::string few = user_error([] { pipeline_order(kDualPipeV, 4, 0, 1, 7); });
  EXPECT_NE(few.find("[train] global_batch"), std::string::npos) << few;
  EXPECT_NE(few.find("at least 2 x [parallel] pipeline = 8"), std::string::npos) << few;
  EXPECT_NE(user_error([] { pipeline_order(kDualPipeV, 2, 0, 2, 4); }).find("[parallel] virtual_stages"),
            std::string::npos);
  // dualpipe: an even number of stages, and of micro-batches (half from each end), at least 2 x stages.
  const auto dualpipe_error = [](int stages, int micro_batches) {
    return user_error([&] { pipeline_order(PipelineSchedule::dualpipe, stages, 0, 1, micro_batches); });
  };
  EXPECT_NE(dualpipe_error(3, 6).find("[parallel] pipeline = 3"), std::string::npos);
  EXPECT_NE(dualpipe_error(4, 9).find("[train] global_batch gives 9"), std::string::npos);
  EXPECT_NE(dualpipe_error(4, 6).find("at least 2 x [parallel] pipeline = 8"), std::string::npos);
}

// Plays every rank's program against point-to-point channels with the communicator's semantics at their
// strictest (rendezvous, nothing buffered): an exchange posts its send and its receive together and
// finishes when both have met their match, and on each directed link sends and receives meet in the
// order they were posted. A pass runs only once its input is on its rank. Returns the first problem, or
// "" when every program ran to its end.
std::string play(const Case& c) {
  const int p = c.stages, chain = c.chain();
  std::vector<std::vector<PipelineStep>> programs;
  for (int r = 0; r < p; ++r)
    programs.push_back(pipeline_program(c.schedule, p, r, c.virtual_stages, c.micro_batches, c.split, c.pairs));
  std::map<std::pair<int, int>, std::deque<PipelineAction>> sends, recvs;  // unmatched posts per (from, to)
  std::vector<std::size_t> next(p, 0);
  std::vector<int> unmatched(p, -1);                // of the current exchange; -1: not posted yet
  std::vector<std::set<PipelineAction>> outputs(p);  // on each rank, not consumed or sent yet
  std::vector<std::vector<PipelineAction>> ran(p);
  const auto input_of = [&](const PipelineAction& a) -> std::optional<PipelineAction> {
    if (a.kind == Kind::weight) return std::nullopt;
    const int from = a.kind == Kind::forward ? a.chunk - 1 : a.chunk + 1;
    if (from < 0 || from / chain != a.chunk / chain) return std::nullopt;  // the chain's first or last
    return PipelineAction{a.kind, a.micro, from};
  };
  const auto has_consumer = [&](const PipelineAction& a) {
    if (a.kind == Kind::weight) return false;
    return a.kind == Kind::forward ? a.chunk % chain + 1 < chain : a.chunk % chain > 0;
  };
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < p; ++r) {
      while (next[r] < programs[r].size()) {
        const PipelineStep& s = programs[r][next[r]];
        const std::string at = "rank " + std::to_string(r) + " step " + std::to_string(next[r]) + ": ";
        if (s.op == PipelineStep::Op::compute) {
          // A pair's two passes need both inputs before either starts; their outputs leave after both.
          std::vector<PipelineAction> unit{s.action};
          if (s.partner) unit.push_back(*s.partner);
          for (const PipelineAction& a : unit) {
            if (c.rank_of(a.chunk) != r) return at + describe(a) + " runs on the wrong rank";
            const PipelineAction its_backward{Kind::backward, a.micro, a.chunk};
            if (a.kind == Kind::weight && std::find(ran[r].begin(), ran[r].end(), its_backward) == ran[r].end())
              return at + describe(a) + " runs before its backward";
            if (const auto in = input_of(a); in && outputs[r].erase(*in) == 0)
              return at + describe(a) + " runs before its input " + describe(*in) + " is there";
          }
          for (const PipelineAction& a : unit) {
            if (has_consumer(a)) outputs[r].insert(a);
            ran[r].push_back(a);
          }
        } else if (unmatched[r] < 0) {
          if (s.peer != (r + 1) % p && s.peer != (r + p - 1) % p) return at + "an exchange with a non-neighbour";
          unmatched[r] = 0;
          if (s.sent) {
            if (outputs[r].erase(*s.sent) == 0) return at + "sends " + describe(*s.sent) + ", which it does not hold";
            sends[{r, s.peer}].push_back(*s.sent);
            ++unmatched[r];
          }
          if (s.received) {
            recvs[{s.peer, r}].push_back(*s.received);
            ++unmatched[r];
          }
          moved = true;
          break;
        } else if (unmatched[r] > 0) {
          break;
        } else {
          unmatched[r] = -1;
        }
        ++next[r];
        moved = true;
      }
    }
    for (auto& [link, queue] : sends) {
      std::deque<PipelineAction>& waiting = recvs[link];
      for (; !queue.empty() && !waiting.empty(); queue.pop_front(), waiting.pop_front()) {
        if (queue.front() != waiting.front())
          return "link " + std::to_string(link.first) + " -> " + std::to_string(link.second) + " delivers " +
                 describe(queue.front()) + " where " + describe(waiting.front()) + " is expected";
        outputs[link.second].insert(queue.front());
        --unmatched[link.first];
        --unmatched[link.second];
        moved = true;
      }
    }
  }
  for (int r = 0; r < p; ++r) {
    if (next[r] < programs[r].size()) return "deadlock: rank " + std::to_string(r) + " waits at step " +
                                             std::to_string(next[r]) + " of " + std::to_string(programs[r].size());
    if (ran[r] != order_of(c, r)) return "rank " + std::to_string(r) + " runs its passes out of pipeline_order";
    if (!outputs[r].empty()) return "rank " + std::to_string(r) + " ends with unconsumed outputs";
  }
  return "";
}

TEST(PipelineProgram, EveryScheduleRunsToTheEndOnBlockingChannels) {
  for (const Case& c : all_cases()) EXPECT_EQ(play(c), "") << describe(c);
  for (const Case& c : split_cases()) EXPECT_EQ(play(c), "") << describe(c);
  for (const Case& c : dualpipe_cases()) EXPECT_EQ(play(c), "") << describe(c);
}

TEST(PipelineProgram, OverlappedPairsRunToTheEndOnBlockingChannels) {
  for (const Case& c : paired_cases()) EXPECT_EQ(play(c), "") << describe(c);
}

// The pairs are DualPipe's: a forward and the backward of the rank's other chunk for another micro-batch,
// in the order's place; per DualPipeV rank r of q stages with n micro-batches per phase (DualPipe: its ranks
// r and p - 1 - r are rank min(r, p - 1 - r) of p/2, with m/2), the steady state's 2 (n - 2q + r + 1) pairs,
// one fewer on the last rank, and the cool-down's q - r - 1. Other schedules, and the flag off, have none.
TEST(PipelineProgram, PairsAreDualPipesForwardWithTheOtherChunksBackward) {
  for (const Case& c : paired_cases()) {
    const bool dual = c.schedule == PipelineSchedule::dualpipe;
    const int q = dual ? c.stages / 2 : c.stages, n = dual ? c.micro_batches / 2 : c.micro_batches;
    for (int r = 0; r < c.stages; ++r) {
      const int rr = dual ? std::min(r, c.stages - 1 - r) : r, later = q - rr - 1;
      int pairs = 0;
      for (const PipelineStep& s : pipeline_program(c.schedule, c.stages, r, 1, c.micro_batches, c.split, true)) {
        if (!s.partner) continue;
        ++pairs;
        EXPECT_EQ(s.action.kind, Kind::forward) << describe(c) << " rank " << r;
        EXPECT_EQ(s.partner->kind, Kind::backward) << describe(c) << " rank " << r;
        EXPECT_NE(s.action.chunk, s.partner->chunk) << describe(c) << " rank " << r;
        EXPECT_NE(s.action.micro, s.partner->micro) << describe(c) << " rank " << r;
      }
      EXPECT_EQ(pairs, 2 * (n - 2 * q + rr + 1) - (later == 0) + later) << describe(c) << " rank " << r;
      for (const PipelineStep& s : pipeline_program(c.schedule, c.stages, r, 1, c.micro_batches, c.split, false))
        EXPECT_FALSE(s.partner) << describe(c) << " rank " << r;
    }
  }
  for (const PipelineStep& s : pipeline_program(kOneFOneB, 4, 1, 1, 8, false, true)) EXPECT_FALSE(s.partner);
  for (const PipelineStep& s : pipeline_program(kInterleaved, 4, 1, 2, 8, false, true)) EXPECT_FALSE(s.partner);
}

TEST(PipelineProgram, SteadyStatePairsOppositeTransfersInOneExchange) {
  // 2 stages, 4 micro-batches: once both ranks are in the steady state, rank 0's forward output and
  // rank 1's gradient cross in one send_recv (Megatron's send_forward_recv_backward on rank 0,
  // send_backward_recv_forward on rank 1).
  const auto F = [](int m, int c) { return PipelineAction{Kind::forward, m, c}; };
  const auto B = [](int m, int c) { return PipelineAction{Kind::backward, m, c}; };
  for (int r = 0; r < 2; ++r) {
    int paired = 0;
    for (const PipelineStep& s : pipeline_program(kOneFOneB, 2, r, 1, 4)) {
      if (s.op != PipelineStep::Op::exchange || !s.sent || !s.received) continue;
      const PipelineAction forward = r == 0 ? *s.sent : *s.received, backward = r == 0 ? *s.received : *s.sent;
      EXPECT_EQ(forward, F(forward.micro, 0));
      EXPECT_EQ(backward, B(forward.micro - 1, 1));
      ++paired;
    }
    EXPECT_EQ(paired, 2) << "rank " << r;  // micro-batches 2 and 3 go forward while 1 and 2 come back
  }
}

// The oracle (support/pipeline_simulation.hpp) with forwards taking f and backwards b.
double simulated_bubble(const Case& c, double f, double b) {
  return test::simulated_bubble(c.schedule, c.stages, c.virtual_stages, c.micro_batches, c.split, f, b);
}

// ideal_bubble is what the schedule's own order leaves at B = 2F: 1F1B's and DualPipeV's orders played
// with those times.
TEST(PipelineOrder, IdealBubbleIsTheOrdersOwnAtBackwardTwiceForward) {
  for (const Case& c : all_cases()) {
    if (c.schedule == kInterleaved) continue;  // its formula assumes the steady state's alternation
    EXPECT_NEAR(simulated_bubble(c, 1, 2), ideal_bubble(c.schedule, c.stages, c.virtual_stages, c.micro_batches), 1e-12)
        << describe(c);
  }
}

// --- run_pipeline over MPI ---

// The toy model: chunk c maps an activation X [kRows, kDim] to tanh(X W_c) with a fixed W_c [kDim, kDim];
// the loss is the sum of squares of the last chunk's output. kRows x kDim f32 is 256 KiB per message, far
// above MPI's eager limits, so every transfer is a rendezvous and a misordered one deadlocks.
constexpr int kRows = 1024, kDim = 64;
using Matrix = std::vector<float>;

float hashed(std::uint64_t seed, std::uint64_t i) {  // uniform in [-1, 1)
  std::uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 * 2 - 1);
}

Matrix weight(int chunk) {
  Matrix w(kDim * kDim);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = hashed(1000 + chunk, i) * 2 / std::sqrt(float{kDim});
  return w;
}

Matrix input(int micro) {
  Matrix x(kRows * kDim);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = hashed(micro, i);
  return x;
}

Matrix chunk_forward(const Matrix& x, const Matrix& w) {
  Matrix y(kRows * kDim, 0.0f);
  for (int i = 0; i < kRows; ++i)
    for (int k = 0; k < kDim; ++k)
      for (int j = 0; j < kDim; ++j) y[i * kDim + j] += x[i * kDim + k] * w[k * kDim + j];
  for (float& v : y) v = std::tanh(v);
  return y;
}

Matrix pre_activation_grad(const Matrix& y, const Matrix& dy) {
  Matrix dz(dy.size());
  for (std::size_t i = 0; i < dz.size(); ++i) dz[i] = dy[i] * (1 - y[i] * y[i]);
  return dz;
}

// Adds d(loss)/dW to dw, from the chunk's input x, output y and d(loss)/dy (the W of a split backward).
void chunk_weight_grad(const Matrix& x, const Matrix& y, const Matrix& dy, Matrix& dw) {
  const Matrix dz = pre_activation_grad(y, dy);
  for (int i = 0; i < kRows; ++i)
    for (int k = 0; k < kDim; ++k)
      for (int j = 0; j < kDim; ++j) dw[k * kDim + j] += x[i * kDim + k] * dz[i * kDim + j];
}

// Returns d(loss)/dX and, unless dw is null (W split off), adds d(loss)/dW to *dw.
Matrix chunk_backward(const Matrix& x, const Matrix& w, const Matrix& y, const Matrix& dy, Matrix* dw) {
  if (dw != nullptr) chunk_weight_grad(x, y, dy, *dw);
  const Matrix dz = pre_activation_grad(y, dy);
  Matrix dx(x.size(), 0.0f);
  for (int i = 0; i < kRows; ++i)
    for (int k = 0; k < kDim; ++k)
      for (int j = 0; j < kDim; ++j) dx[i * kDim + k] += dz[i * kDim + j] * w[k * kDim + j];
  return dx;
}

Matrix loss_gradient(const Matrix& y) {
  Matrix dy(y.size());
  for (std::size_t i = 0; i < y.size(); ++i) dy[i] = 2 * y[i];
  return dy;
}

double sum_of_squares(const Matrix& y) {
  return std::accumulate(y.begin(), y.end(), 0.0, [](double s, float v) { return s + double{v} * v; });
}

Tensor to_tensor(const Matrix& m) {
  Tensor t = Tensor::host({kRows, kDim}, DType::f32);
  std::copy(m.begin(), m.end(), t.data<float>());
  return t;
}
Matrix to_matrix(const Tensor& t) { return Matrix(t.data<float>(), t.data<float>() + t.numel()); }

struct Gradients {
  std::vector<Matrix> dw;  // per chunk; empty for chunks of other ranks
  double loss = 0;         // on the rank of the last chunk
};

// One rank's passes through a chain of `chain` chunks (weights weight(0 .. chain - 1)). With chain < chunks
// (dualpipe: a second copy of the chain in chunks chain .. 2 chain - 1) the second half of the micro-batches
// goes through the copy, whose gradients are kept apart.
Gradients sequential(int chunks, int micro_batches, int chain = 0) {
  chain = chain > 0 ? chain : chunks;
  Gradients g{std::vector<Matrix>(chunks, Matrix(kDim * kDim, 0.0f)), 0};
  for (int m = 0; m < micro_batches; ++m) {
    const int first = chain < chunks && 2 * m >= micro_batches ? chain : 0;
    std::vector<Matrix> xs{input(m)}, ys;
    for (int s = 0; s < chain; ++s) {
      ys.push_back(chunk_forward(xs.back(), weight(s)));
      xs.push_back(ys.back());
    }
    g.loss += sum_of_squares(ys.back());
    Matrix dy = loss_gradient(ys.back());
    for (int s = chain - 1; s >= 0; --s) dy = chunk_backward(xs[s], weight(s), ys[s], dy, &g.dw[first + s]);
  }
  return g;
}

struct Pipelined {
  Gradients grads;
  PipelineReport report;
};

// With pairs, DualPipe's overlapped pairs run, and every pass hands over to its partner once in its middle
// (as a MoE layer's token exchange does).
Pipelined pipelined(PipelineSchedule s, int virtual_stages, int micro_batches, bool record_timeline = false,
                    bool split = false, bool pairs = false) {
  const Case plan{s, world_size(), virtual_stages, micro_batches, split, pairs};
  const int p = world_size(), rank = world_rank(), chunks = plan.chunks();
  std::vector<int> members(p);
  std::iota(members.begin(), members.end(), 0);
  const kernels::Context ctx = kernels::Context::cpu();
  const auto pp = parallel::make_communicator(parallel::Backend::mpi, "pp", members, ctx, 120);

  Pipelined out;
  out.grads.dw.resize(chunks);
  for (int k : plan.chunks_of(rank)) out.grads.dw[k].assign(kDim * kDim, 0.0f);
  std::map<std::pair<int, int>, std::pair<Matrix, Matrix>> stash;  // (micro, chunk) -> its input and output
  std::map<std::pair<int, int>, std::tuple<Matrix, Matrix, Matrix>> kept;  // split: x, y, dy until the W
  PipelineHooks hooks;
  hooks.activation_shape = {kRows, kDim};
  hooks.activation_dtype = DType::f32;
  const int chain = plan.chain();  // chunk c runs stage c % chain (dualpipe: two copies of the chain)
  const auto first = [&](int c) { return c % chain == 0; };
  const auto last = [&](int c) { return c % chain == chain - 1; };
  hooks.forward = [&](int m, int c, const Tensor& in) {
    EXPECT_EQ(in.defined(), !first(c)) << "micro " << m << " chunk " << c;
    Matrix x = first(c) ? input(m) : to_matrix(in);
    Matrix y = chunk_forward(x, weight(c % chain));
    if (pairs) interleave_switch();
    if (last(c)) out.grads.loss += sum_of_squares(y);
    const Tensor result = last(c) ? Tensor() : to_tensor(y);
    stash[{m, c}] = {std::move(x), std::move(y)};
    return result;
  };
  hooks.backward = [&](int m, int c, const Tensor& dout) {
    EXPECT_EQ(dout.defined(), !last(c)) << "micro " << m << " chunk " << c;
    auto node = stash.extract({m, c});
    EXPECT_FALSE(node.empty()) << "backward of micro " << m << " chunk " << c << " before its forward";
    if (node.empty()) return Tensor();
    const auto& [x, y] = node.mapped();
    const Matrix dy = last(c) ? loss_gradient(y) : to_matrix(dout);
    // Split: the input gradient now, the weight gradient by the W pass from what it keeps.
    const Matrix dx = chunk_backward(x, weight(c % chain), y, dy, split ? nullptr : &out.grads.dw[c]);
    if (pairs) interleave_switch();
    if (split) kept[{m, c}] = {x, y, dy};
    return first(c) ? Tensor() : to_tensor(dx);
  };
  if (split)
    hooks.weight = [&](int m, int c) {
      auto node = kept.extract({m, c});
      ASSERT_FALSE(node.empty()) << "W of micro " << m << " chunk " << c << " before its backward";
      const auto& [x, y, dy] = node.mapped();
      chunk_weight_grad(x, y, dy, out.grads.dw[c]);
    };
  out.report = run_pipeline(s, *pp, ctx, virtual_stages, micro_batches, hooks, record_timeline, pairs);
  EXPECT_TRUE(stash.empty());
  EXPECT_TRUE(kept.empty());
  return out;
}

double relative_error(const Matrix& a, const Matrix& b) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
    norm += double{b[i]} * b[i];
  }
  return std::sqrt(diff / norm);
}

// Every chunk's weight gradient on its rank, and the loss on the last chunk's rank, equal the sequential
// run: the same arithmetic in the same order, so they agree bit for bit, well inside 1e-6.
void expect_matches_one_rank(PipelineSchedule s, int virtual_stages, int micro_batches) {
  const Case c{s, world_size(), virtual_stages, micro_batches};
  const int rank = world_rank(), chunks = c.chunks();
  SCOPED_TRACE(describe(c));
  const Pipelined got = pipelined(s, virtual_stages, micro_batches);
  const Gradients want = sequential(chunks, micro_batches);
  for (int k : c.chunks_of(rank)) EXPECT_LT(relative_error(got.grads.dw[k], want.dw[k]), 1e-6) << "chunk " << k;
  if (c.rank_of(chunks - 1) == rank) {
    EXPECT_NEAR(got.grads.loss, want.loss, 1e-6 * want.loss);
  }
}

TEST(PipelineRun, OneFOneBGradientsEqualOneRank) {
  expect_matches_one_rank(kOneFOneB, 1, 1);
  expect_matches_one_rank(kOneFOneB, 1, 2 * world_size() + 1);
}

TEST(PipelineRun, InterleavedGradientsEqualOneRank) {
  expect_matches_one_rank(kInterleaved, 2, 2 * world_size());
  expect_matches_one_rank(kInterleaved, 3, world_size());
}

TEST(PipelineRun, DualPipeVGradientsEqualOneRank) {
  expect_matches_one_rank(kDualPipeV, 1, 2 * world_size());
  expect_matches_one_rank(kDualPipeV, 1, 2 * world_size() + 1);
}

// With W split off, each chunk's W passes still add its micro-batches in order: one rank's sums, bit for bit.
TEST(PipelineRun, DualPipeVWithWeightSplitGradientsEqualOneRankExactly) {
  for (const int m : {2 * world_size(), 2 * world_size() + 3}) {
    const Case c{kDualPipeV, world_size(), 1, m, true};
    SCOPED_TRACE(describe(c));
    const Pipelined got = pipelined(c.schedule, 1, m, false, true);
    const Gradients want = sequential(c.chunks(), m);
    for (int k : c.chunks_of(world_rank())) EXPECT_EQ(got.grads.dw[k], want.dw[k]) << "chunk " << k;
    EXPECT_TRUE(got.report.split_weight);
    EXPECT_EQ(got.report.ideal_bubble, ideal_bubble(kDualPipeV, c.stages, 1, m, true));
  }
}

// DualPipe: each copy of each stage adds its direction's micro-batches in order, one rank's sums bit for bit
// (the trainer's all-reduce of the two copies is then one more addition per element).
TEST(PipelineRun, DualPipeGradientsOfEachCopyEqualOneRankExactly) {
  if (world_size() % 2 != 0) {  // one rank: refused, naming the key
    EXPECT_NE(user_error([] { pipeline_order(PipelineSchedule::dualpipe, world_size(), 0, 1, 4); }).find("[parallel] pipeline"),
              std::string::npos);
    return;
  }
  for (const bool split : {false, true}) {
    const Case c{PipelineSchedule::dualpipe, world_size(), 1, 2 * world_size() + 2, split};
    SCOPED_TRACE(describe(c));
    const Pipelined got = pipelined(c.schedule, 1, c.micro_batches, false, split);
    const Gradients want = sequential(c.chunks(), c.micro_batches, c.chain());
    for (int k : c.chunks_of(world_rank())) EXPECT_EQ(got.grads.dw[k], want.dw[k]) << "chunk " << k;
    EXPECT_EQ(got.report.ideal_bubble, ideal_bubble(c.schedule, c.stages, 1, c.micro_batches, split));
  }
}

// DualPipe's overlapped pairs: the two passes of each pair take turns at their switch points on two threads
// and compute the same bits as the program without pairs, with or without the W split.
TEST(PipelineRun, OverlappedPairsTakeTurnsAndGiveTheSameBits) {
  const int p = world_size();
  std::vector<Case> cases;
  for (bool split : {false, true}) {
    cases.push_back({kDualPipeV, p, 1, 2 * p + 1, split, true});
    if (p % 2 == 0) cases.push_back({PipelineSchedule::dualpipe, p, 1, 2 * p + 2, split, true});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c));
    const Pipelined plain = pipelined(c.schedule, 1, c.micro_batches, false, c.split, false);
    const std::int64_t before = interleave_switches_total();
    const Pipelined paired = pipelined(c.schedule, 1, c.micro_batches, false, c.split, true);
    for (int k : c.chunks_of(world_rank())) EXPECT_EQ(paired.grads.dw[k], plain.grads.dw[k]) << "chunk " << k;
    EXPECT_EQ(paired.grads.loss, plain.grads.loss);
    int expected = 0;
    for (const PipelineStep& s : pipeline_program(c.schedule, p, world_rank(), 1, c.micro_batches, c.split, true))
      expected += s.partner.has_value();
    EXPECT_GT(expected, 0);
    EXPECT_EQ(plain.report.pairs, 0);
    EXPECT_EQ(paired.report.pairs, expected);
    // Each pair: the forward hands over in its middle, the backward in its; the forward then ends and the
    // backward finishes.
    EXPECT_EQ(paired.report.pair_switches, 2 * expected);
    EXPECT_EQ(interleave_switches_total() - before, 2 * expected);
    EXPECT_EQ(paired.report.sends, plain.report.sends);
    EXPECT_EQ(paired.report.recvs, plain.report.recvs);
  }
}

// Every pass sends its output unless it is the model's first or last or its consumer is on this rank
// (one stage, the turn of the V); every pass with an input from another rank receives it.
int transfers(const Case& c, int rank) {
  int n = 0;
  for (int k : c.chunks_of(rank))
    n += c.micro_batches * ((k + 1 < c.chunks() && c.rank_of(k + 1) != rank) + (k > 0 && c.rank_of(k - 1) != rank));
  return n;
}

TEST(PipelineRun, ReportsTransfersAndTheBubble) {
  const int p = world_size(), rank = world_rank();
  for (const Case c : {Case{kInterleaved, p, 2, 2 * p}, Case{kDualPipeV, p, 1, 2 * p}}) {
    SCOPED_TRACE(describe(c));
    const PipelineReport report = pipelined(c.schedule, c.virtual_stages, c.micro_batches).report;
    EXPECT_DOUBLE_EQ(report.ideal_bubble, ideal_bubble(c.schedule, p, c.virtual_stages, c.micro_batches));
    EXPECT_GE(report.bubble_fraction, 0.0);
    EXPECT_LE(report.bubble_fraction, 1.0);
    EXPECT_GT(report.busy_s, 0.0);
    EXPECT_LE(report.busy_s, report.wall_s);
    EXPECT_EQ(report.sends, transfers(c, rank));
    EXPECT_EQ(report.recvs, transfers(c, rank));
    EXPECT_TRUE(report.timeline.empty());  // not asked for
  }
  EXPECT_DOUBLE_EQ(ideal_bubble(kInterleaved, 4, 2, 8), 3.0 / 19);
  EXPECT_DOUBLE_EQ(ideal_bubble(kDualPipeV, 4, 1, 8), 11.0 / 59);
}

// The recorded timeline is the program as it ran: one event per step in program order, back to back in
// time within the schedule's wall time, and its passes' time is the busy time.
TEST(PipelineRun, RecordsEveryStepOfTheProgramInOrder) {
  const int p = world_size(), rank = world_rank();
  for (const Case c : {Case{kOneFOneB, p, 1, p}, Case{kDualPipeV, p, 1, 2 * p}, Case{kDualPipeV, p, 1, 2 * p, false, true}}) {
    SCOPED_TRACE(describe(c));
    const PipelineReport report = pipelined(c.schedule, c.virtual_stages, c.micro_batches, true, false, c.pairs).report;
    const std::vector<PipelineStep> program =
        pipeline_program(c.schedule, p, rank, c.virtual_stages, c.micro_batches, false, c.pairs);
    ASSERT_EQ(report.timeline.size(), program.size());
    double busy = 0, last_end = 0;
    for (std::size_t i = 0; i < program.size(); ++i) {
      const TimelineEvent& e = report.timeline[i];
      EXPECT_EQ(e.step.op, program[i].op) << "step " << i;
      EXPECT_EQ(e.step.action, program[i].action) << "step " << i;
      EXPECT_EQ(e.step.partner, program[i].partner) << "step " << i;
      EXPECT_EQ(e.step.peer, program[i].peer) << "step " << i;
      EXPECT_GE(e.start_s, last_end) << "step " << i;
      EXPECT_GE(e.end_s, e.start_s) << "step " << i;
      last_end = e.end_s;
      if (e.step.op == PipelineStep::Op::compute) busy += e.end_s - e.start_s;
    }
    EXPECT_LE(last_end, report.wall_s);
    EXPECT_NEAR(busy, report.busy_s, 1e-9 * program.size());
  }
}

}  // namespace
