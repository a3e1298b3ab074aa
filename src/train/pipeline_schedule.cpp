// Pipeline schedules: Megatron's and DualPipeV's pass orders, the exchanges placed between the passes by a
// lockstep simulation of every rank, and the runner that executes (and can time) one rank's program.
#include "train/pipeline_schedule.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "core/error.hpp"
#include "core/interleave.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"

namespace r1 {
namespace {

using Kind = PipelineAction::Kind;

void require_arguments(PipelineSchedule s, int stages, int rank, int virtual_stages, int micro_batches,
                       bool split_weight) {
  R1_CHECK(stages >= 1 && 0 <= rank && rank < stages, "pipeline rank ", rank, " of ", stages, " stages");
  R1_REQUIRE(micro_batches >= 1, "[train] global_batch: the pipeline needs at least one micro-batch per step, got ",
             micro_batches);
  const bool dual = s == PipelineSchedule::dualpipev || s == PipelineSchedule::dualpipe;
  R1_REQUIRE(!split_weight || dual, "[parallel] split_weight_grad = true needs schedule = dualpipev or dualpipe (the "
             "schedules that place the deferred weight gradients), not ", choice_word(s));
  if (s == PipelineSchedule::dualpipe) {
    R1_REQUIRE(virtual_stages == 1, "[parallel] virtual_stages = ", virtual_stages, ": schedule = dualpipe always runs "
               "two model chunks per pipeline rank (a stage of each direction); leave virtual_stages at 1");
    R1_REQUIRE(stages % 2 == 0, "[parallel] pipeline = ", stages, ": schedule = dualpipe needs an even number of stages");
    R1_REQUIRE(micro_batches % 2 == 0 && micro_batches >= 2 * stages, "[train] global_batch gives ", micro_batches,
               " micro-batches per step: schedule = dualpipe needs an even number, at least 2 x [parallel] pipeline = ",
               2 * stages, " (half enter from each end)");
    return;
  }
  if (s == PipelineSchedule::dualpipev) {
    R1_REQUIRE(virtual_stages == 1, "[parallel] virtual_stages = ", virtual_stages, ": schedule = dualpipev always runs "
               "two model chunks per pipeline rank (the V); leave virtual_stages at 1");
    R1_REQUIRE(micro_batches >= 2 * stages, "[train] global_batch gives ", micro_batches, " micro-batches per step: "
               "schedule = dualpipev needs at least 2 x [parallel] pipeline = ", 2 * stages);
    return;
  }
  if (s == PipelineSchedule::one_f_one_b) {
    R1_REQUIRE(virtual_stages == 1, "[parallel] virtual_stages = ", virtual_stages,
               " needs schedule = interleaved (1f1b runs one model chunk per pipeline rank)");
    return;
  }
  R1_REQUIRE(virtual_stages >= 2, "[parallel] virtual_stages = ", virtual_stages,
             ": schedule = interleaved needs at least 2 model chunks per pipeline rank (or schedule = 1f1b)");
  R1_REQUIRE(micro_batches % stages == 0, "[train] global_batch gives ", micro_batches,
             " micro-batches per step: schedule = interleaved needs a multiple of [parallel] pipeline = ", stages);
}

// Where a schedule runs chunk `chunk`.
int rank_of(PipelineSchedule s, int chunk, int stages) { return parallel::chunk_rank(chunk_placement(s), chunk, stages); }

// The pass whose output `a` consumes: none for the forward of a chain's first chunk and the backward of
// its last. `chain`: the chunks a micro-batch passes (pipeline_chain_length).
std::optional<PipelineAction> input_of(const PipelineAction& a, int chain) {
  if (a.kind == Kind::weight) return std::nullopt;  // its backward ran on this rank before it
  if (a.kind == Kind::forward) {
    if (a.chunk % chain == 0) return std::nullopt;
    return PipelineAction{Kind::forward, a.micro, a.chunk - 1};
  }
  if (a.chunk % chain == chain - 1) return std::nullopt;
  return PipelineAction{Kind::backward, a.micro, a.chunk + 1};
}

// The chunk that consumes a's output: -1 for the forward of a chain's last chunk and the backward of its first.
int consumer_of(const PipelineAction& a, int chain) {
  if (a.kind == Kind::weight) return -1;
  if (a.kind == Kind::forward) return a.chunk % chain == chain - 1 ? -1 : a.chunk + 1;
  return a.chunk % chain == 0 ? -1 : a.chunk - 1;
}

// DualPipeV, the "cut-in-half" DualPipe of DeepSeek's DualPipe repository. Phase 0 is the rank's chunk on
// the way down (chunk rank), phase 1 its chunk on the way up (2 stages - 1 - rank); each phase takes the
// micro-batches in order. Warm-up: 2 (stages - rank - 1) forwards of phase 0, then rank + 1 pairs F0 F1,
// then stages - rank - 1 times B1 F1. Steady state: m - 2 stages + rank + 1 times F0 B1 F1 B0, the forward
// of one micro-batch next to the backward of another (the pairs DualPipe overlaps). Cool-down:
// stages - rank - 1 times B1 F1 B0, rank + 1 times B1 B0, stages - rank - 1 times B0.
// Without split_weight each backward computes both the input and the weight gradient. With it every
// backward is followed by its W, at once or deferred into the cool-down as DualPipeV's zero-bubble steps
// place it: the warm-up's B1 are each followed by their W; the second half of the B1 B0 pairs (from pair
// (rank + 1) / 2, its B1 on odd ranks, its B0 on even ones) and the last B0s defer theirs, and the deferred
// Ws run first in, first out, one before each of the last B0s and all at the end. Per chunk the Ws keep the
// backwards' micro-batch order, so every weight gradient sums its micro-batches in the same order.
// DualPipe (bidirectional) takes the same steps with half the ranks and half the micro-batches per phase
// (dualpipe_order): `first_micro` numbers each phase's micro-batches.
struct Phases {
  int chunk[2];
  int first_micro[2];
};

// A rank's passes, and with the pairs (DualPipe's overlapped forward/backward pairs) the index of each
// pair's first pass, whose successor is its partner.
struct Order {
  std::vector<PipelineAction> passes;
  std::vector<std::size_t> pair_starts;
};

// Pairs, as DeepSeek's DualPipe runs them overlapped: the steady state's F0 B1 (but its first on the last
// rank, where F0's output turns the V into this rank's own F1 of the same micro-batch) and F1 B0, and the
// cool-down's F1 B0.
Order dualpipev_order(int stages, int rank, int micro_batches, bool split_weight, const Phases& phases) {
  const auto& [chunk, first_micro] = phases;
  int done[2][2] = {};  // [kind][phase]: forwards and backwards issued so far
  Order out;
  std::vector<PipelineAction>& order = out.passes;
  std::vector<PipelineAction> deferred;
  bool defer = false;  // the W of the next backwards waits for a drain()
  const auto run = [&](Kind kind, int phase) {
    const PipelineAction a{kind, first_micro[phase] + done[kind == Kind::forward ? 0 : 1][phase]++, chunk[phase]};
    order.push_back(a);
    if (kind == Kind::forward || !split_weight) return;
    const PipelineAction w{Kind::weight, a.micro, a.chunk};
    if (defer) deferred.push_back(w);
    else order.push_back(w);
  };
  // F of `phase` and B of the other, the next two passes.
  const auto pair = [&](int phase) {
    out.pair_starts.push_back(order.size());
    run(Kind::forward, phase);
    run(Kind::backward, 1 - phase);
  };
  const auto drain = [&] {
    if (deferred.empty()) return;
    order.push_back(deferred.front());
    deferred.erase(deferred.begin());
  };
  const auto add = [&](std::initializer_list<std::pair<Kind, int>> passes, int times) {
    for (int t = 0; t < times; ++t)
      for (const auto& [kind, phase] : passes) run(kind, phase);
  };
  const int later = stages - rank - 1;
  add({{Kind::forward, 0}}, 2 * later);
  add({{Kind::forward, 0}, {Kind::forward, 1}}, rank + 1);
  add({{Kind::backward, 1}, {Kind::forward, 1}}, later);
  for (int t = 0; t < micro_batches - 2 * stages + rank + 1; ++t) {
    if (t == 0 && later == 0) {
      add({{Kind::forward, 0}, {Kind::backward, 1}}, 1);
    } else {
      pair(0);
    }
    pair(1);
  }
  for (int t = 0; t < later; ++t) {
    run(Kind::backward, 1);
    pair(1);
  }
  for (int i = 0; i <= rank; ++i) {
    defer = defer || (i == (rank + 1) / 2 && rank % 2 == 1);
    run(Kind::backward, 1);
    defer = defer || (i == (rank + 1) / 2 && rank % 2 == 0);
    run(Kind::backward, 0);
  }
  for (int i = 0; i < later; ++i) {
    drain();
    run(Kind::backward, 0);
  }
  while (!deferred.empty()) drain();
  return out;
}

// DualPipe, DeepSeek-V3's bidirectional schedule (§3.2.1; the DualPipe repository's order): micro-batches
// 0 .. m/2 - 1 go down chunks 0 .. p - 1 (stage s on rank s), m/2 .. m - 1 go up chunks p .. 2p - 1 (stage
// c - p, a second copy of the parameters, on rank 2p - 1 - c). Rank r runs DualPipeV's steps as rank
// min(r, p - 1 - r) of p/2 stages with m/2 micro-batches per phase; phase 0 is the direction that reaches
// it first (down for the upper half of the ranks, up for the lower half).
Order dualpipe_order(int stages, int rank, int micro_batches, bool split_weight) {
  const int half = micro_batches / 2, down = rank, up = 2 * stages - 1 - rank;
  const bool lower = rank >= stages / 2;
  const Phases phases{.chunk = {lower ? up : down, lower ? down : up}, .first_micro = {lower ? half : 0, lower ? 0 : half}};
  return dualpipev_order(stages / 2, std::min(rank, stages - 1 - rank), half, split_weight, phases);
}

// The dual schedules' orders with their pairs; the others' orders without.
Order order_of(PipelineSchedule s, int stages, int rank, int virtual_stages, int micro_batches, bool split_weight) {
  if (s == PipelineSchedule::dualpipev)
    return dualpipev_order(stages, rank, micro_batches, split_weight, {.chunk = {rank, 2 * stages - 1 - rank}, .first_micro = {0, 0}});
  if (s == PipelineSchedule::dualpipe) return dualpipe_order(stages, rank, micro_batches, split_weight);
  return {.passes = pipeline_order(s, stages, rank, virtual_stages, micro_batches, split_weight), .pair_starts = {}};
}

// Every rank's program, from a lockstep simulation of the whole pipeline: in each tick every rank runs
// its next unit (a pass, or with overlap_pairs a pair of passes) if the unit's inputs are there, then
// every link with outputs to carry exchanges them.
// The links are the neighbour pairs {i, i+1}, and {stages-1, 0} where interleaving wraps the model
// around the ranks (the V of dualpipev turns on the last rank instead, without a message). They
// exchange in rounds in which a rank has at most one link (2 rounds; a ring of odd length needs a
// third). In a round a link carries the tick's outputs each way in the order its units produced them
// (a pair's first pass, then its partner), the k-th of each way in one exchange: a link whose ends both
// send pairs the two in one send_recv, in the steady state Megatron's send_forward_recv_backward and
// send_backward_recv_forward.
// Why it cannot deadlock: both ends of a link hold its k-th exchange of a round at the same (tick, round,
// k), every rank issues its exchanges in (tick, round, k) order, and a rank has one link per round; so the
// earliest unfinished exchange is the next one on both of its ends, and it completes. The two ends of a
// link see its messages in the same order.
std::vector<std::vector<PipelineStep>> all_programs(PipelineSchedule s, int stages, int virtual_stages,
                                                    int micro_batches, bool split_weight, bool overlap_pairs) {
  const int chunks = pipeline_chain_length(s, stages, virtual_stages);
  struct Unit {
    PipelineAction action;
    std::optional<PipelineAction> partner;
  };
  std::vector<std::vector<Unit>> units(stages);
  for (int r = 0; r < stages; ++r) {
    const Order o = order_of(s, stages, r, virtual_stages, micro_batches, split_weight);
    std::set<std::size_t> starts;
    if (overlap_pairs) starts.insert(o.pair_starts.begin(), o.pair_starts.end());
    for (std::size_t i = 0; i < o.passes.size(); ++i) {
      units[r].push_back({o.passes[i], std::nullopt});
      if (starts.count(i)) units[r].back().partner = o.passes[++i];
    }
  }
  std::vector<int> links;  // link i joins ranks i and (i + 1) % stages
  for (int i = 0; i + 1 < stages; ++i) links.push_back(i);
  if (s == PipelineSchedule::interleaved && stages > 2) links.push_back(stages - 1);
  const auto round_of = [&](int link) { return stages % 2 == 1 && link == stages - 1 ? 2 : link % 2; };

  std::vector<std::vector<PipelineStep>> programs(stages);
  std::vector<std::size_t> next(stages, 0);
  std::vector<std::set<PipelineAction>> arrived(stages);  // outputs on each rank not consumed yet
  const auto unfinished = [&] {
    for (int r = 0; r < stages; ++r)
      if (next[r] < units[r].size()) return true;
    return false;
  };
  const auto ready = [&](int r, const PipelineAction& a) {
    const auto in = input_of(a, chunks);
    return !in || arrived[r].count(*in) > 0;
  };
  while (unfinished()) {
    std::vector<std::vector<PipelineAction>> out(stages);  // the outputs each rank sends this tick, in order
    bool ran = false;
    for (int r = 0; r < stages; ++r) {
      if (next[r] == units[r].size()) continue;
      const Unit& u = units[r][next[r]];
      if (!ready(r, u.action) || (u.partner && !ready(r, *u.partner))) continue;
      programs[r].push_back({.op = PipelineStep::Op::compute, .action = u.action, .partner = u.partner, .peer = -1,
                             .sent = {}, .received = {}});
      ++next[r];
      ran = true;
      for (const auto& a : {std::optional<PipelineAction>(u.action), u.partner}) {
        if (!a) continue;
        if (const auto in = input_of(*a, chunks)) arrived[r].erase(*in);
        const int to = consumer_of(*a, chunks);
        if (to < 0) continue;
        if (rank_of(s, to, stages) == r) arrived[r].insert(*a);
        else out[r].push_back(*a);
      }
    }
    R1_CHECK(ran, "the pipeline schedule stalls (", stages, " stages, ", virtual_stages, " virtual stages, ",
             micro_batches, " micro-batches)");
    const auto carried = [&](int from, int to) {
      std::vector<PipelineAction> c;
      for (const PipelineAction& a : out[from])
        if (rank_of(s, consumer_of(a, chunks), stages) == to) c.push_back(a);
      return c;
    };
    for (int round = 0; round < 3; ++round) {
      for (int link : links) {
        if (round_of(link) != round) continue;
        const int a = link, b = (link + 1) % stages;
        const auto ab = carried(a, b), ba = carried(b, a);
        for (std::size_t k = 0; k < std::max(ab.size(), ba.size()); ++k) {
          const auto at = [](const std::vector<PipelineAction>& v, std::size_t i) {
            return i < v.size() ? std::optional<PipelineAction>(v[i]) : std::nullopt;
          };
          programs[a].push_back({.op = PipelineStep::Op::exchange, .action = {}, .partner = {}, .peer = b,
                                 .sent = at(ab, k), .received = at(ba, k)});
          programs[b].push_back({.op = PipelineStep::Op::exchange, .action = {}, .partner = {}, .peer = a,
                                 .sent = at(ba, k), .received = at(ab, k)});
        }
        for (const auto& x : ab) arrived[b].insert(x);
        for (const auto& x : ba) arrived[a].insert(x);
      }
    }
  }
  return programs;
}

}  // namespace

std::vector<PipelineAction> pipeline_order(PipelineSchedule s, int stages, int rank, int virtual_stages,
                                           int micro_batches, bool split_weight) {
  require_arguments(s, stages, rank, virtual_stages, micro_batches, split_weight);
  if (s == PipelineSchedule::dualpipev || s == PipelineSchedule::dualpipe)
    return order_of(s, stages, rank, virtual_stages, micro_batches, split_weight).passes;
  const int v = virtual_stages, total = virtual_stages * micro_batches;
  // Pass k of a kind: groups of `stages` micro-batches go through every chunk of this rank in turn,
  // forwards from its first chunk up, backwards from its last chunk down (Megatron's get_model_chunk_id).
  const auto pass = [&](Kind kind, int k) {
    const int group = k / (stages * v), in_group = k % (stages * v);
    const int local = kind == Kind::forward ? in_group / stages : v - 1 - in_group / stages;
    return PipelineAction{kind, group * stages + in_group % stages, local * stages + rank};
  };
  // The first backward reaches a rank after its micro-batch has gone through the later ranks and back
  // (one pass each way per later rank: 1F1B's steady state runs both, interleaved ones alternate, so two
  // ticks); with interleaving the rank's other v - 1 chunks fill first.
  const int warmup = s == PipelineSchedule::one_f_one_b
                         ? std::min(stages - rank - 1, total)
                         : std::min(2 * (stages - rank - 1) + (v - 1) * stages, total);
  std::vector<PipelineAction> order;
  for (int k = 0; k < warmup; ++k) order.push_back(pass(Kind::forward, k));
  for (int k = 0; k < total - warmup; ++k) {
    order.push_back(pass(Kind::forward, warmup + k));
    order.push_back(pass(Kind::backward, k));
  }
  for (int k = total - warmup; k < total; ++k) order.push_back(pass(Kind::backward, k));
  return order;
}

std::vector<PipelineStep> pipeline_program(PipelineSchedule s, int stages, int rank, int virtual_stages,
                                           int micro_batches, bool split_weight, bool overlap_pairs) {
  require_arguments(s, stages, rank, virtual_stages, micro_batches, split_weight);
  return all_programs(s, stages, virtual_stages, micro_batches, split_weight, overlap_pairs)[rank];
}

double ideal_bubble(PipelineSchedule s, int stages, int virtual_stages, int micro_batches, bool split_weight) {
  const double p = stages, m = micro_batches;
  if (s == PipelineSchedule::dualpipe) {
    // Per rank m chunk passes (m/2 per direction) of F + B (+ W). The same simulation of dualpipe_order
    // (p = 2 .. 8) leaves the busiest rank idle (2p - 5)F at B = 2F (none at p = 2), or with W split off
    // (p/2 - 1)F at F = B = W (exact whenever B <= W), beside 3mF of work.
    const double idle = split_weight ? p / 2 - 1 : std::max(0.0, 2 * p - 5);
    return idle / (idle + 3 * m);
  }
  if (s != PipelineSchedule::dualpipev) return (p - 1) / (virtual_stages * m + p - 1);
  if (stages == 1) return 0;
  // With W split off and F = B = W (a backward twice a forward, halved), the same simulation leaves every
  // rank (p - 1)F idle beside 6mF busy: the deferred Ws fill the cool-down's gaps.
  if (split_weight) return (p - 1) / (p - 1 + 6 * m);
  // Per rank 2m chunk passes of F + B. With the paired passes run one after the other and W inside B,
  // the busiest rank idles (2p - 3)F + (p - 1)B at B = 2F (an event simulation of dualpipev_order for
  // p = 2 .. 8; below the DualPipe README's (PP/2 - 1)(F&B + B - 3W) = (p - 1)(F + 2B), which counts
  // the overlapped pairs as units): (4p - 5)F beside 6mF.
  return (4 * p - 5) / (4 * p - 5 + 6 * m);
}

namespace {

// The exchanges of one program step, timed: the time blocked in them is the wait the timeline shows.
void run_exchange(const PipelineStep& step, parallel::Communicator& pp, const kernels::Context& ctx,
                  const PipelineHooks& hooks, std::map<PipelineAction, Tensor>& outgoing,
                  std::map<PipelineAction, Tensor>& arrived, PipelineReport& report) {
  Tensor in;
  if (step.received) in = ctx.empty(hooks.activation_shape, hooks.activation_dtype);
  if (step.sent && step.received) pp.send_recv(outgoing.at(*step.sent), step.peer, in, step.peer);
  else if (step.sent) pp.send(outgoing.at(*step.sent), step.peer);
  else pp.recv(in, step.peer);
  if (step.sent) {
    outgoing.erase(*step.sent);
    ++report.sends;
  }
  if (step.received) {
    arrived.emplace(*step.received, std::move(in));
    ++report.recvs;
  }
}

// The largest idle share over the pipeline.
double pipeline_bubble(parallel::Communicator& pp, const kernels::Context& ctx, const PipelineReport& report) {
  Tensor idle = Tensor::host({1}, DType::f64);
  idle.data<double>()[0] = report.wall_s > 0 ? std::max(0.0, 1 - report.busy_s / report.wall_s) : 0;
  const Tensor shared = ctx.to_here(idle);
  pp.all_reduce(shared, parallel::ReduceOp::max);
  pp.wait();
  copy(idle, shared);
  return idle.data<double>()[0];
}

}  // namespace

PipelineReport run_pipeline(PipelineSchedule s, parallel::Communicator& pp, const kernels::Context& ctx,
                            int virtual_stages, int micro_batches, const PipelineHooks& hooks, bool record_timeline,
                            bool overlap_pairs, Interleave* pair_thread) {
  R1_CHECK(hooks.forward && hooks.backward, "run_pipeline needs both a forward and a backward hook");
  const int stages = pp.size(), chunks = pipeline_chain_length(s, stages, virtual_stages);
  const bool split = static_cast<bool>(hooks.weight);
  const std::vector<PipelineStep> program =
      pipeline_program(s, stages, pp.rank(), virtual_stages, micro_batches, split, overlap_pairs);
  PipelineReport report;
  report.ideal_bubble = ideal_bubble(s, stages, virtual_stages, micro_batches, split);
  report.split_weight = split;

  std::map<PipelineAction, Tensor> arrived;   // outputs received or kept here, until their pass runs
  std::map<PipelineAction, Tensor> outgoing;  // outputs waiting for their exchange
  // One pass: its input taken from `arrived`, its output checked and kept for its consumer.
  const auto pass = [&](const PipelineAction& a) {
    Tensor input;
    if (const auto in = input_of(a, chunks)) {
      auto node = arrived.extract(*in);
      R1_CHECK(!node.empty(), "pipeline: the input of micro-batch ", a.micro, ", chunk ", a.chunk, " never arrived");
      input = std::move(node.mapped());
    }
    return [&, a, input = std::move(input)] {
      Tensor output;
      if (a.kind == Kind::forward) output = hooks.forward(a.micro, a.chunk, input);
      else if (a.kind == Kind::backward) output = hooks.backward(a.micro, a.chunk, input);
      else hooks.weight(a.micro, a.chunk);
      const int to = consumer_of(a, chunks);
      if (to < 0) return;
      R1_CHECK(output.defined() && output.shape() == hooks.activation_shape && output.dtype() == hooks.activation_dtype,
               "pipeline: the ", a.kind == Kind::forward ? "forward" : "backward", " of micro-batch ", a.micro, ", chunk ",
               a.chunk, " returned ", output.defined() ? output.str() : "nothing", ", not ", dtype_name(hooks.activation_dtype),
               hooks.activation_shape.str());
      (rank_of(s, to, stages) == pp.rank() ? arrived : outgoing).emplace(a, std::move(output));
    };
  };
  std::unique_ptr<Interleave> own_thread;  // made at the first pair when the caller passes none
  Interleave* pairs = pair_thread;
  const Stopwatch wall;
  for (const PipelineStep& step : program) {
    if (step.op == PipelineStep::Op::exchange) {
      // A recorded exchange waits for its transfers, so that its interval is the time it held the rank.
      const double start = wall.seconds();
      run_exchange(step, pp, ctx, hooks, outgoing, arrived, report);
      if (!record_timeline) continue;
      ctx.synchronize();
      report.timeline.push_back({.step = step, .start_s = start, .end_s = wall.seconds()});
      continue;
    }
    // Busy time is the pass's own: the stream also holds the queued transfers, so wait for them before
    // the clock starts and for the pass's kernels before it stops.
    ctx.synchronize();
    const double start = wall.seconds();
    const auto first = pass(step.action);
    if (!step.partner) {
      first();
    } else {
      const auto second = pass(*step.partner);
      ++report.pairs;
      if (!pairs && parallel::mpi_threads_take_turns()) {
        own_thread = std::make_unique<Interleave>([&ctx] { ctx.use_on_this_thread(); });
        pairs = own_thread.get();
      }
      if (pairs) {
        report.pair_switches += pairs->run(first, second);
      } else {
        static bool warned = false;
        if (!warned) log_warn("[parallel] overlap_chunk_pairs: MPI was not initialised with MPI_THREAD_SERIALIZED, so "
                              "each pipeline pair runs one pass after the other (the same results, no overlap)");
        warned = true;
        first();
        second();
      }
    }
    ctx.synchronize();
    const double end = wall.seconds();
    report.busy_s += end - start;
    if (record_timeline) report.timeline.push_back({.step = step, .start_s = start, .end_s = end});
  }
  pp.wait();
  report.wall_s = wall.seconds();
  report.bubble_fraction = pipeline_bubble(pp, ctx, report);
  return report;
}

}  // namespace r1
