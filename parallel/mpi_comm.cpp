// MPI backend: host buffers, one MPI communicator per group, every op non-blocking and polled by the watchdog.
#include <mpi.h>

#include <array>
#include <climits>
#include <memory>
#include <functional>
#include <vector>

#include "core/timer.hpp"
#include "parallel/backends.hpp"
#include "parallel/watched_mpi.hpp"

namespace r1::parallel {

namespace {
// Data movement type per dtype. MPI has no bf16 or fp8 type; moving their bits needs none.
MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::bf16: return MPI_UINT16_T;
    case DType::u8:
    case DType::f8e4m3: return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

// bf16 is reduced in f32: widen, reduce, round once. The result is the f32 reduction rounded to bf16,
// whatever algorithm MPI picks; NCCL rounds at every step, so it may differ by an ulp per hop.
Tensor widen(const Tensor& t) {
  Tensor w = Tensor::host(t.shape(), DType::f32);
  const bf16* src = t.data<bf16>();
  float* dst = w.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) dst[i] = to_float(src[i]);
  return w;
}
void narrow(const Tensor& w, const Tensor& t) {
  const float* src = w.data<float>();
  bf16* dst = t.data<bf16>();
  for (std::int64_t i = 0; i < t.numel(); ++i) dst[i] = to_bf16(src[i]);
}

// A request and what may be done with it if the watchdog gives up on it.
struct Pending {
  enum Kind { collective, send, recv };
  MPI_Request req = MPI_REQUEST_NULL;
  Kind kind = collective;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(GroupInfo info, MPI_Comm comm) : Communicator(std::move(info), Location::host, -1), comm_(comm) {}
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  Backend backend() const override { return Backend::mpi; }
  MPI_Comm host_comm() const override { return comm_; }

 protected:
  void do_all_reduce(const Tensor& buf, ReduceOp op) override {
    const Tensor b = buf.dtype() == DType::bf16 ? widen(buf) : buf;
    Pending p;
    check("all_reduce", MPI_Iallreduce(MPI_IN_PLACE, b.raw(), count("all_reduce", b.numel()), mpi_type(b.dtype()),
                                       mpi_op(op), comm_, &p.req));
    complete("all_reduce", {&p, 1}, [buf, b] {
      if (buf.dtype() == DType::bf16) narrow(b, buf);
    });
  }

  void do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    const bool bf = in.dtype() == DType::bf16;
    const Tensor i = bf ? widen(in) : in;
    const Tensor o = bf ? Tensor::host(out.shape(), DType::f32) : out;
    Pending p;
    check("reduce_scatter", MPI_Ireduce_scatter_block(i.raw(), o.raw(), count("reduce_scatter", o.numel()),
                                                      mpi_type(o.dtype()), mpi_op(op), comm_, &p.req));
    complete("reduce_scatter", {&p, 1}, [bf, i, o, out] {
      if (bf) narrow(o, out);
    });
  }

  void do_all_gather(const Tensor& in, const Tensor& out) override {
    const int n = count("all_gather", in.numel());
    count("all_gather", out.numel());
    Pending p;
    check("all_gather", MPI_Iallgather(in.raw(), n, mpi_type(in.dtype()), out.raw(), n, mpi_type(out.dtype()), comm_,
                                       &p.req));
    complete("all_gather", {&p, 1});
  }

  void do_all_to_allv(const Tensor& in, Counts sc, Counts sd, const Tensor& out, Counts rc, Counts rd) override {
    const auto ints = [&](Counts c) {
      std::vector<int> v(c.size());
      for (std::size_t p = 0; p < c.size(); ++p) v[p] = count("all_to_allv", c[p]);
      return v;
    };
    count("all_to_allv", in.numel());
    count("all_to_allv", out.numel());
    // MPI reads the count arrays until the op completes: the completion keeps them.
    const auto split = std::make_shared<std::array<std::vector<int>, 4>>(
        std::array<std::vector<int>, 4>{ints(sc), ints(sd), ints(rc), ints(rd)});
    const auto& [send_counts, send_displs, recv_counts, recv_displs] = *split;
    Pending p;
    check("all_to_allv", MPI_Ialltoallv(in.raw(), send_counts.data(), send_displs.data(), mpi_type(in.dtype()),
                                        out.raw(), recv_counts.data(), recv_displs.data(), mpi_type(out.dtype()),
                                        comm_, &p.req));
    complete("all_to_allv", {&p, 1}, [split] {});
  }

  void do_send(const Tensor& buf, int peer, int tag) override {
    Pending p{MPI_REQUEST_NULL, Pending::send};
    check("send", MPI_Isend(buf.raw(), count("send", buf.numel()), mpi_type(buf.dtype()), peer, tag, comm_, &p.req));
    complete("send", {&p, 1});
  }

  void do_recv(const Tensor& buf, int peer, int tag) override {
    Pending p{MPI_REQUEST_NULL, Pending::recv};
    check("recv", MPI_Irecv(buf.raw(), count("recv", buf.numel()), mpi_type(buf.dtype()), peer, tag, comm_, &p.req));
    complete("recv", {&p, 1});
  }

  void do_send_recv(const Tensor& send_buf, int dst, const Tensor& recv_buf, int src, int tag) override {
    Pending p[2] = {{MPI_REQUEST_NULL, Pending::recv}, {MPI_REQUEST_NULL, Pending::send}};
    check("send_recv", MPI_Irecv(recv_buf.raw(), count("send_recv", recv_buf.numel()), mpi_type(recv_buf.dtype()),
                                 src, tag, comm_, &p[0].req));
    check("send_recv", MPI_Isend(send_buf.raw(), count("send_recv", send_buf.numel()), mpi_type(send_buf.dtype()),
                                 dst, tag, comm_, &p[1].req));
    complete("send_recv", p);
  }

  void do_broadcast(const Tensor& buf, int root) override {
    Pending p;
    check("broadcast",
          MPI_Ibcast(buf.raw(), count("broadcast", buf.numel()), mpi_type(buf.dtype()), root, comm_, &p.req));
    complete("broadcast", {&p, 1});
  }

  void do_barrier() override {
    Pending p;
    check("barrier", MPI_Ibarrier(comm_, &p.req));
    complete("barrier", {&p, 1});
  }

  void do_wait() override {}

  // An op leaves the list only once complete: if the watchdog gives up on one, the later ones (whose
  // requests MPI may still be serving) keep their buffers and count arrays.
  void do_finish_started(std::int64_t through) override {
    while (!deferred_.empty() && deferred_.front().number <= through) {
      poll(deferred_.front().op, deferred_.front().requests);
      const std::function<void()> then = std::move(deferred_.front().then);
      deferred_.erase(deferred_.begin());
      if (then) then();
    }
  }

 private:
  // MPI 3 counts are ints; a larger buffer is a user error (split it, or use NCCL).
  int count(const char* op, std::int64_t n) const {
    R1_REQUIRE(n <= INT_MAX, where(op), ": ", n, " elements exceed MPI's count limit of ", INT_MAX,
               " per buffer; split the buffer");
    return static_cast<int>(n);
  }

  void check(const char* op, int rc) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fail(op, std::string(text, len));
  }

  // An op's requests, then `then` (e.g. narrowing a widened bf16 result). A started op's completion is
  // deferred to finish_started().
  void complete(const char* op, std::span<Pending> ops, std::function<void()> then = {}) {
    if (starting()) {
      deferred_.push_back({op, starting_number(), std::vector<Pending>(ops.begin(), ops.end()), std::move(then)});
      return;
    }
    poll(op, ops);
    if (then) then();
  }

  // Polls the requests until all are done or the watchdog's deadline passes. On a timeout, receives are
  // cancelled (so no late message lands in a buffer the caller has moved on from) and sends are
  // released to finish on their own; a collective cannot be withdrawn in MPI, and its error is expected
  // to end the job (main aborts on comm errors).
  void poll(const char* op, std::span<Pending> ops) {
    if (timeout_s() <= 0) {
      for (Pending& p : ops) check(op, MPI_Wait(&p.req, MPI_STATUS_IGNORE));
      return;
    }
    const Stopwatch clock;
    for (;;) {
      bool done = true;
      for (Pending& p : ops) {
        int flag = 1;
        if (p.req != MPI_REQUEST_NULL) check(op, MPI_Test(&p.req, &flag, MPI_STATUS_IGNORE));
        done = done && flag;
      }
      if (done) return;
      const double waited = clock.seconds();
      if (waited > timeout_s()) {
        for (Pending& p : ops) {
          if (p.req == MPI_REQUEST_NULL) continue;
          if (p.kind == Pending::recv) {
            MPI_Cancel(&p.req);
            MPI_Wait(&p.req, MPI_STATUS_IGNORE);
          } else if (p.kind == Pending::send) {
            MPI_Request_free(&p.req);
          }
        }
        timed_out(op, waited);
      }
    }
  }

  struct Deferred {
    const char* op;
    std::int64_t number;  // of the started op (Communicator::starting_number)
    std::vector<Pending> requests;
    std::function<void()> then;
  };

  MPI_Comm comm_;
  std::vector<Deferred> deferred_;  // the started ops, in the order started
};
}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(GroupInfo info) {
  // Colour by the group's rank 0 (unique per group of a partition), key by rank within the group, so the
  // MPI ranks of the new communicator are the group ranks.
  MPI_Comm comm = MPI_COMM_NULL;
  const int rc = MPI_Comm_split(MPI_COMM_WORLD, info.members.front(), info.rank, &comm);
  R1_CHECK(rc == MPI_SUCCESS, "MPI_Comm_split for ", info.name, " failed with code ", rc);
  int rank = -1, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (rank != info.rank || size != static_cast<int>(info.members.size())) {
    MPI_Comm_free(&comm);
    R1_FAIL(user, "communicator ", info.name, ": the groups passed by the ranks do not partition the world (this ",
            "rank is ", info.rank, " of ", info.members.size(), " but the ranks naming the same group rank 0 make it ",
            rank, " of ", size, ")");
  }
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  attach_watch(comm, {info.name, info.timeout_s});  // host agreements on host_comm() share the op deadline
  return std::make_unique<MpiCommunicator>(std::move(info), comm);
}

}  // namespace r1::parallel
