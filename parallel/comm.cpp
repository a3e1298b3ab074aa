#include "parallel/comm.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>

#include "parallel/backends.hpp"
#include "parallel/mesh.hpp"
#include "parallel/watched_mpi.hpp"

namespace r1::parallel {

const char* backend_name(Backend b) { return b == Backend::mpi ? "mpi" : "nccl"; }

Backend parse_backend(const std::string& s) {
  if (s == "mpi") return Backend::mpi;
  if (s == "nccl") return Backend::nccl;
  R1_FAIL(user, "unknown communication backend '", s, "' (mpi or nccl)");
}

Communicator::Communicator(GroupInfo info, Location memory, int device)
    : info_(std::move(info)), memory_(memory), device_(device) {}

std::string Communicator::where(const char* op) const { return detail::concat(op, " on ", info_.name); }

void Communicator::fail(const char* op, const std::string& why) const {
  R1_FAIL(comm, where(op), " (rank ", rank(), " of ", size(), "): ", why);
}

void Communicator::timed_out(const char* op, double waited_s) const {
  char waited[32];
  std::snprintf(waited, sizeof waited, "%.1f", waited_s);
  throw WatchdogTimeout(detail::concat("watchdog: ", where(op), " (rank ", rank(), " of ", size(),
                                       ") did not finish within ", info_.timeout_s, " s (waited ", waited,
                                       " s): a member of the group is missing, stuck or dead, or the ",
                                       "communication timeout is too short for this op"));
}

void Communicator::require_buffer(const char* op, const char* what, const Tensor& t) const {
  R1_REQUIRE(t.defined(), where(op), ": ", what, " is an undefined tensor");
  const bool here = memory_ == Location::host ? t.on_host() : !t.on_host() && t.device() == device_;
  R1_REQUIRE(here, where(op), ": ", what, " (", t.str(), ") must be in ",
             memory_ == Location::host ? std::string("host memory") : "the memory of cuda:" + std::to_string(device_),
             " for the ", backend_name(backend()), " backend");
}

void Communicator::require_reducible(const char* op, const Tensor& t) const {
  R1_REQUIRE(t.dtype() != DType::f8e4m3, where(op), ": cannot reduce ", t.str(),
             " (reductions take f32, bf16, f64, i32, i64 or u8)");
}

void Communicator::require_disjoint(const char* op, const Tensor& a, const Tensor& b) const {
  const auto* pa = static_cast<const char*>(a.raw());
  const auto* pb = static_cast<const char*>(b.raw());
  const bool apart = a.nbytes() == 0 || b.nbytes() == 0 || pa + a.nbytes() <= pb || pb + b.nbytes() <= pa;
  R1_REQUIRE(apart, where(op), ": input ", a.str(), " and output ", b.str(), " overlap");
}

void Communicator::require_peer(const char* op, const char* what, int peer) const {
  R1_REQUIRE(0 <= peer && peer < size(), where(op), ": ", what, " ", peer, " is not a rank of this group of ", size());
}

void Communicator::require_split(const char* op, const char* what, Counts counts, Counts displs,
                                 const Tensor& t) const {
  R1_REQUIRE(counts.size() == static_cast<std::size_t>(size()) && displs.size() == counts.size(), where(op), ": ",
             what, " counts and displacements need one entry per rank (", size(), "), got ", counts.size(), " and ",
             displs.size());
  for (int p = 0; p < size(); ++p)
    R1_REQUIRE(counts[p] >= 0 && displs[p] >= 0 && displs[p] + counts[p] <= t.numel(), where(op), ": ", what,
               " block for rank ", p, " (", counts[p], " elements at offset ", displs[p], ") is outside ", t.str());
}

template <class Issue> void Communicator::issue(const Tensor& a, const Tensor& b, Issue&& do_issue) {
  if (!starting_) {
    finish_started();
    do_issue();
    return;
  }
  ++ops_started_;
  do_issue();
  held_.push_back({ops_started_, {a}});
  if (b.defined()) held_.back().second.push_back(b);
}

namespace {
// Marks the ops issued in its lifetime as started ones.
class Starting {
 public:
  explicit Starting(bool& flag) : flag_(flag) { flag_ = true; }
  ~Starting() { flag_ = false; }
  Starting(const Starting&) = delete;
  Starting& operator=(const Starting&) = delete;

 private:
  bool& flag_;
};
}  // namespace

void Communicator::start_all_reduce(const Tensor& buf, ReduceOp op) {
  const Starting s(starting_);
  all_reduce(buf, op);
}

void Communicator::start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) {
  const Starting s(starting_);
  reduce_scatter(in, out, op);
}

void Communicator::start_all_to_allv(const Tensor& in, Counts send_counts, Counts send_displs, const Tensor& out,
                                     Counts recv_counts, Counts recv_displs) {
  const Starting s(starting_);
  all_to_allv(in, send_counts, send_displs, out, recv_counts, recv_displs);
}

void Communicator::finish_started() { finish_started(ops_started_); }

void Communicator::finish_started(std::int64_t through) {
  if (held_.empty() || held_.front().first > through) return;
  do_finish_started(through);
  std::size_t n = 0;
  while (n < held_.size() && held_[n].first <= through) ++n;
  held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(n));
}

void Communicator::wait() {
  finish_started();
  do_wait();
}

void Communicator::all_reduce(const Tensor& buf, ReduceOp op) {
  require_buffer("all_reduce", "buffer", buf);
  require_reducible("all_reduce", buf);
  if (buf.numel() > 0) issue(buf, {}, [&] { do_all_reduce(buf, op); });
}

void Communicator::reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) {
  require_buffer("reduce_scatter", "input", in);
  require_buffer("reduce_scatter", "output", out);
  require_reducible("reduce_scatter", in);
  R1_REQUIRE(in.dtype() == out.dtype() && in.numel() == size() * out.numel(), where("reduce_scatter"),
             ": input ", in.str(), " must be ", size(), " x output ", out.str(), " of the same dtype");
  require_disjoint("reduce_scatter", in, out);
  if (out.numel() > 0) issue(in, out, [&] { do_reduce_scatter(in, out, op); });
}

void Communicator::all_gather(const Tensor& in, const Tensor& out) {
  require_buffer("all_gather", "input", in);
  require_buffer("all_gather", "output", out);
  R1_REQUIRE(in.dtype() == out.dtype() && out.numel() == size() * in.numel(), where("all_gather"), ": output ",
             out.str(), " must be ", size(), " x input ", in.str(), " of the same dtype");
  require_disjoint("all_gather", in, out);
  if (in.numel() > 0) issue(in, out, [&] { do_all_gather(in, out); });
}

// Equal splits are the v-variant with uniform counts: one code path per backend.
void Communicator::all_to_all(const Tensor& in, const Tensor& out) {
  require_buffer("all_to_all", "input", in);
  require_buffer("all_to_all", "output", out);
  R1_REQUIRE(in.dtype() == out.dtype() && in.numel() == out.numel() && in.numel() % size() == 0,
             where("all_to_all"), ": input ", in.str(), " and output ", out.str(),
             " must have the same dtype and size, a multiple of the group size ", size());
  require_disjoint("all_to_all", in, out);
  if (in.numel() == 0) return;
  const std::vector<std::int64_t> counts(size(), in.numel() / size());
  const std::vector<std::int64_t> displs = packed_displacements(counts);
  issue(in, out, [&] { do_all_to_allv(in, counts, displs, out, counts, displs); });
}

void Communicator::all_to_allv(const Tensor& in, Counts send_counts, Counts send_displs, const Tensor& out,
                               Counts recv_counts, Counts recv_displs) {
  require_buffer("all_to_allv", "input", in);
  require_buffer("all_to_allv", "output", out);
  R1_REQUIRE(in.dtype() == out.dtype(), where("all_to_allv"), ": input ", in.str(), " and output ", out.str(),
             " differ in dtype");
  require_split("all_to_allv", "send", send_counts, send_displs, in);
  require_split("all_to_allv", "receive", recv_counts, recv_displs, out);
  require_disjoint("all_to_allv", in, out);
  issue(in, out, [&] { do_all_to_allv(in, send_counts, send_displs, out, recv_counts, recv_displs); });
}

void Communicator::send(const Tensor& buf, int peer, int tag) {
  require_buffer("send", "buffer", buf);
  require_peer("send", "peer", peer);
  R1_REQUIRE(0 <= tag && tag <= 32767, where("send"), ": tag ", tag, " is outside [0, 32767]");
  issue(buf, {}, [&] { do_send(buf, peer, tag); });
}

void Communicator::recv(const Tensor& buf, int peer, int tag) {
  require_buffer("recv", "buffer", buf);
  require_peer("recv", "peer", peer);
  R1_REQUIRE(0 <= tag && tag <= 32767, where("recv"), ": tag ", tag, " is outside [0, 32767]");
  issue(buf, {}, [&] { do_recv(buf, peer, tag); });
}

void Communicator::send_recv(const Tensor& send_buf, int dst, const Tensor& recv_buf, int src, int tag) {
  require_buffer("send_recv", "send buffer", send_buf);
  require_buffer("send_recv", "receive buffer", recv_buf);
  require_peer("send_recv", "destination", dst);
  require_peer("send_recv", "source", src);
  R1_REQUIRE(0 <= tag && tag <= 32767, where("send_recv"), ": tag ", tag, " is outside [0, 32767]");
  require_disjoint("send_recv", send_buf, recv_buf);
  issue(send_buf, recv_buf, [&] { do_send_recv(send_buf, dst, recv_buf, src, tag); });
}

void Communicator::broadcast(const Tensor& buf, int root) {
  require_buffer("broadcast", "buffer", buf);
  require_peer("broadcast", "root", root);
  if (buf.numel() > 0) issue(buf, {}, [&] { do_broadcast(buf, root); });
}

void Communicator::barrier() {
  finish_started();
  do_barrier();
}

std::vector<std::int64_t> packed_displacements(Counts counts) {
  std::vector<std::int64_t> displs(counts.size());
  std::int64_t at = 0;
  for (std::size_t p = 0; p < counts.size(); ++p) {
    displs[p] = at;
    at += counts[p];
  }
  return displs;
}

bool mpi_threads_take_turns() {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided >= MPI_THREAD_SERIALIZED;
}

std::unique_ptr<Communicator> make_communicator(Backend backend, const std::string& kind,
                                                const std::vector<int>& members,
                                                [[maybe_unused]] const kernels::Context& ctx, double timeout_s) {
#if !defined(R1HPC_HAVE_CUDA)
  R1_REQUIRE(backend == Backend::mpi, "communicator ", kind,
             ": the nccl backend needs a CUDA build of r1hpc (this one has none); use the mpi backend");
#endif
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const auto self = std::find(members.begin(), members.end(), world_rank);
  R1_REQUIRE(self != members.end(), "communicator ", kind, "[", format_ranks(members), "] is created on rank ",
             world_rank, ", which is not one of its members");
  R1_REQUIRE(timeout_s >= 0, "communicator ", kind, ": the timeout must be >= 0 seconds (0 = none), got ", timeout_s);
  GroupInfo info{kind + "[" + format_ranks(members) + "]", members, static_cast<int>(self - members.begin()),
                 timeout_s};
  // NCCL is bootstrapped over the group's MPI communicator, so both backends start from one.
  std::unique_ptr<Communicator> mpi = make_mpi_communicator(std::move(info));
#if defined(R1HPC_HAVE_CUDA)
  if (backend == Backend::nccl) return make_nccl_communicator(std::move(mpi), ctx);
#endif
  return mpi;
}

}  // namespace r1::parallel
