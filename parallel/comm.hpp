// Communicator: one interface over one group of ranks, with an MPI backend (host buffers) and an NCCL
// backend (device buffers, stream-ordered), each guarded by a watchdog that turns a hang into an error.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"

namespace r1::parallel {

enum class Backend { mpi, nccl };
const char* backend_name(Backend b);          // "mpi", "nccl"
Backend parse_backend(const std::string& s);  // the inverse; a user error names the accepted values

enum class ReduceOp { sum, max, min };

// Who a communicator talks to. `name` is "<kind>[<global ranks>]", e.g. "tp[0,1]", and is what every
// error message calls the group.
struct GroupInfo {
  std::string name;
  std::vector<int> members;  // global (world) ranks, ordered by rank within the group
  int rank = 0;              // this process's rank within the group
  double timeout_s = 0;      // watchdog limit per op; 0 = wait forever
};

using Counts = std::span<const std::int64_t>;

// Every op takes whole tensors as flat buffers of numel() elements. Buffers live where the backend
// wants them (MPI: host, NCCL: the communicator's device); an op's input and output must not overlap.
// Reductions take f32, bf16, f64, i32, i64 and u8; pure data movement takes any dtype (f8e4m3 too).
// The arguments are checked before anything is sent, with user errors that name the op and the group;
// failures and watchdog timeouts of the transport are r1::Error of kind comm.
//
// Completion: MPI ops have finished when they return. NCCL ops are queued on the context's stream and
// ordered with the kernels queued there; wait() blocks (under the watchdog) until they are done.
//
// Overlap with compute: a started op (start_all_reduce, start_reduce_scatter, start_all_to_allv) runs
// while the caller goes on queuing compute. NCCL queues it on the communicator's own stream, behind the
// work already queued on the compute stream; MPI starts it non-blocking. Until finish_started() its
// buffers must be neither written nor read; the communicator keeps them alive, so the caller may drop
// them. finish_started() puts what comes after it behind every started op (finish_started(n): behind those
// up to the n-th started, the later ones staying in flight): NCCL makes the compute
// stream wait for them (the host does not wait); MPI completes them under the watchdog. Started ops are
// issued in the order started (NCCL runs them one after another; MPI may progress them together), and
// every blocking op, barrier() and wait() first finishes them, so a blocking op never runs concurrently
// with a started one on the same communicator.
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return info_.rank; }
  int size() const { return static_cast<int>(info_.members.size()); }
  const std::string& name() const { return info_.name; }
  const std::vector<int>& members() const { return info_.members; }
  double timeout_s() const { return info_.timeout_s; }
  virtual Backend backend() const = 0;
  // The MPI communicator over the same ranks in the same order, for host-side agreement beside the
  // backend's ops (the checkpointer, the stop signal); NCCL keeps the one it was bootstrapped over.
  virtual MPI_Comm host_comm() const = 0;

  void all_reduce(const Tensor& buf, ReduceOp op = ReduceOp::sum);  // in place
  // out = this rank's block (rank r gets elements [r*n, (r+1)*n)) of the reduction of `in`; in = size x out.
  void reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum);
  void all_gather(const Tensor& in, const Tensor& out);  // out = the members' `in`, in rank order
  // Equal splits: block p of `in` goes to rank p; block p of `out` comes from rank p.
  void all_to_all(const Tensor& in, const Tensor& out);
  // Per-peer element counts and offsets (in elements): send_counts[p] elements from in[send_displs[p]]
  // go to rank p, recv_counts[p] elements from rank p land at out[recv_displs[p]]. Counts may be zero.
  void all_to_allv(const Tensor& in, Counts send_counts, Counts send_displs, const Tensor& out, Counts recv_counts,
                   Counts recv_displs);
  // Point to point with a peer's rank within the group. A lone send or recv blocks until its peer
  // posts the match (on NCCL: the stream does), so exchanges both ways must use send_recv.
  // Messages between two ranks are matched in the order they are issued; NCCL ignores the tag.
  void send(const Tensor& buf, int peer, int tag = 0);
  void recv(const Tensor& buf, int peer, int tag = 0);
  void send_recv(const Tensor& send_buf, int dst, const Tensor& recv_buf, int src, int tag = 0);
  void broadcast(const Tensor& buf, int root);
  void barrier();  // returns when every member has entered it (NCCL: and the queued ops are done)
  void wait();     // every op issued so far has finished

  void start_all_reduce(const Tensor& buf, ReduceOp op = ReduceOp::sum);
  void start_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum);
  void start_all_to_allv(const Tensor& in, Counts send_counts, Counts send_displs, const Tensor& out,
                         Counts recv_counts, Counts recv_displs);
  void finish_started();
  // Finishes the started ops up to the one that was the through-th started over the communicator's life
  // (ops_started() right after starting it); ops started later stay started. The two passes of an
  // overlapped pipeline pair each finish their own exchange, not the other's just started.
  void finish_started(std::int64_t through);
  bool has_started() const { return !held_.empty(); }  // ops started and not yet finished
  std::int64_t ops_started() const { return ops_started_; }  // over the communicator's life

 protected:
  Communicator(GroupInfo info, Location memory, int device);
  std::string where(const char* op) const;  // "all_reduce on tp[0,1]"
  [[noreturn]] void fail(const char* op, const std::string& why) const;  // a comm error
  [[noreturn]] void timed_out(const char* op, double waited_s) const;
  // Whether the op being issued is a started one (the backends queue it aside, or defer its completion),
  // and then its number (ops_started() once issued), which do_finish_started is given.
  bool starting() const { return starting_; }
  std::int64_t starting_number() const { return ops_started_; }

  virtual void do_all_reduce(const Tensor& buf, ReduceOp op) = 0;
  virtual void do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) = 0;
  virtual void do_all_gather(const Tensor& in, const Tensor& out) = 0;
  virtual void do_all_to_allv(const Tensor& in, Counts send_counts, Counts send_displs, const Tensor& out,
                              Counts recv_counts, Counts recv_displs) = 0;
  virtual void do_send(const Tensor& buf, int peer, int tag) = 0;
  virtual void do_recv(const Tensor& buf, int peer, int tag) = 0;
  virtual void do_send_recv(const Tensor& send_buf, int dst, const Tensor& recv_buf, int src, int tag) = 0;
  virtual void do_broadcast(const Tensor& buf, int root) = 0;
  virtual void do_barrier() = 0;
  virtual void do_wait() = 0;
  // Puts what follows behind the started ops numbered up to `through` (they were started in number order).
  virtual void do_finish_started(std::int64_t through) = 0;

 private:
  void require_buffer(const char* op, const char* what, const Tensor& t) const;
  void require_reducible(const char* op, const Tensor& t) const;
  void require_disjoint(const char* op, const Tensor& a, const Tensor& b) const;
  void require_peer(const char* op, const char* what, int peer) const;
  void require_split(const char* op, const char* what, Counts counts, Counts displs, const Tensor& t) const;
  // Runs a checked op's issue: a blocking one after finishing the started ops, a started one keeping
  // its buffers (a, b) until finish_started().
  template <class Issue> void issue(const Tensor& a, const Tensor& b, Issue&& do_issue);

  GroupInfo info_;
  Location memory_;
  int device_;
  bool starting_ = false;
  std::int64_t ops_started_ = 0;
  std::vector<std::pair<std::int64_t, std::vector<Tensor>>> held_;  // the started ops' numbers and buffers
};

// Whether MPI was initialised with MPI_THREAD_SERIALIZED or more (main asks for it): the passes of an
// overlapped pipeline pair (core/interleave.hpp) issue MPI calls from two threads, one at a time.
bool mpi_threads_take_turns();

// Offsets of blocks packed back to back: the exclusive prefix sum of `counts`.
std::vector<std::int64_t> packed_displacements(Counts counts);

// Creates this rank's communicator for `members`, a group of world ranks that contains this rank, and
// names it "<kind>[<members>]". Collective over MPI_COMM_WORLD: every rank calls it at the same point,
// each with its own group, and the groups of one call partition the world. NCCL needs a CUDA context
// (its device and stream); MPI ignores the context.
std::unique_ptr<Communicator> make_communicator(Backend backend, const std::string& kind,
                                                const std::vector<int>& members, const kernels::Context& ctx,
                                                double timeout_s);

}  // namespace r1::parallel
