// NCCL backend: device buffers on the context's GPU, every op queued on the context's stream (a started
// one on the communicator's own stream, ordered with the compute stream by events). The NCCL
// communicator is non-blocking (config.blocking = 0), so no NCCL call can hang the host: connection
// setup, enqueueing and completion are all polled under the watchdog, which aborts the communicator
// (ncclCommAbort also stops its kernels) before it reports the op that did not finish.
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <thread>

#include "core/timer.hpp"
#include "kernels/cuda/resources.hpp"
#include "parallel/backends.hpp"

namespace r1::parallel {

namespace {
// bf16 reductions run in NCCL's own bf16 arithmetic; fp8 is only ever moved, never reduced.
ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::bf16: return ncclBfloat16;
    case DType::u8:
    case DType::f8e4m3: return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

bool accepted(ncclResult_t r) { return r == ncclSuccess || r == ncclInProgress; }

void* at(const Tensor& t, std::int64_t element) {
  return static_cast<char*>(t.raw()) + element * static_cast<std::int64_t>(dtype_size(t.dtype()));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> boot, const kernels::Context& ctx)
      : Communicator(GroupInfo{boot->name(), boot->members(), boot->rank(), boot->timeout_s()}, Location::device,
                     ctx.device()),
        ctx_(ctx),
        boot_(std::move(boot)) {
    R1_REQUIRE(ctx.is_cuda(), where("init"), ": the nccl backend needs a CUDA context (device buffers)");
    stream_ = ctx.cuda_resources().stream;
    R1_CUDA(cudaSetDevice(ctx.device()));
    ncclUniqueId id{};
    const Tensor wire = Tensor::host_zeros({static_cast<std::int64_t>(sizeof id)}, DType::u8);
    if (rank() == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) fail("init", ncclGetErrorString(r));
      std::memcpy(wire.raw(), &id, sizeof id);
    }
    boot_->broadcast(wire, 0);
    std::memcpy(&id, wire.raw(), sizeof id);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    config.commName = name().c_str();  // the name NCCL's own logs use; lives as long as this object
    last_op_ = "init";
    settle(ncclCommInitRankConfig(&comm_, size(), id, rank(), &config));
    scratch_ = ctx.zeros({1}, DType::f32);
  }

  ~NcclCommunicator() override {
    if (comm_) finalize();
    destroy_side_stream();
  }

  void finalize() {
    cudaSetDevice(device());
    // Finalize flushes this rank's queued ops; bounded by the watchdog so teardown cannot hang either.
    ncclResult_t r = ncclCommFinalize(comm_);
    const Stopwatch clock;
    while (r == ncclInProgress && (timeout_s() <= 0 || clock.seconds() < timeout_s())) {
      std::this_thread::yield();
      if (ncclCommGetAsyncError(comm_, &r) != ncclSuccess) break;
    }
    if (r == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
  }

  Backend backend() const override { return Backend::nccl; }
  MPI_Comm host_comm() const override { return boot_->host_comm(); }

 protected:
  void do_wait() override {
    enter(last_op_);
    const Stopwatch clock;
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) R1_FAIL(cuda, where(last_op_), ": ", cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && !accepted(async)) abort_and_fail(async);
      const double waited = clock.seconds();
      if (timeout_s() > 0 && waited > timeout_s()) {
        abort();
        timed_out(last_op_, waited);
      }
      std::this_thread::yield();
    }
  }

  // The compute stream waits for the side stream's ops up to `through`; the host goes on. The latest started
  // op needs an event recorded now; an earlier one has the mark recorded when the next op was started.
  void do_finish_started(std::int64_t through) override {
    R1_CUDA(cudaSetDevice(device()));
    cudaEvent_t event = done_;
    if (through >= last_started_) {
      R1_CUDA(cudaEventRecord(done_, side_));
    } else {
      const auto mark = std::find_if(marks_.begin(), marks_.end(), [&](const Mark& m) { return m.through == through; });
      R1_CHECK(mark != marks_.end(), where("finish_started"), ": no event after started op ", through);
      event = mark->event;
    }
    R1_CUDA(cudaStreamWaitEvent(stream_, event, 0));
    while (!marks_.empty() && marks_.front().through <= through) {
      spare_.push_back(marks_.front().event);
      marks_.pop_front();
    }
  }

  void do_all_reduce(const Tensor& buf, ReduceOp op) override {
    enter("all_reduce");
    settle(ncclAllReduce(buf.raw(), buf.raw(), count(buf), nccl_type(buf.dtype()), nccl_op(op), comm_, issue_));
  }

  void do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    enter("reduce_scatter");
    settle(ncclReduceScatter(in.raw(), out.raw(), count(out), nccl_type(out.dtype()), nccl_op(op), comm_, issue_));
  }

  void do_all_gather(const Tensor& in, const Tensor& out) override {
    enter("all_gather");
    settle(ncclAllGather(in.raw(), out.raw(), count(in), nccl_type(in.dtype()), comm_, issue_));
  }

  // Zero counts are skipped: the peer's matching count is zero too, so both sides skip.
  void do_all_to_allv(const Tensor& in, Counts sc, Counts sd, const Tensor& out, Counts rc, Counts rd) override {
    const ncclDataType_t t = nccl_type(in.dtype());
    grouped("all_to_allv", [&](auto&& call) {
      for (int p = 0; p < size(); ++p) {
        if (sc[p] > 0) call(ncclSend(at(in, sd[p]), static_cast<std::size_t>(sc[p]), t, p, comm_, issue_));
        if (rc[p] > 0) call(ncclRecv(at(out, rd[p]), static_cast<std::size_t>(rc[p]), t, p, comm_, issue_));
      }
    });
  }

  void do_send(const Tensor& buf, int peer, int) override {
    enter("send");
    if (buf.numel() > 0) settle(ncclSend(buf.raw(), count(buf), nccl_type(buf.dtype()), peer, comm_, issue_));
  }

  void do_recv(const Tensor& buf, int peer, int) override {
    enter("recv");
    if (buf.numel() > 0) settle(ncclRecv(buf.raw(), count(buf), nccl_type(buf.dtype()), peer, comm_, issue_));
  }

  void do_send_recv(const Tensor& send_buf, int dst, const Tensor& recv_buf, int src, int) override {
    grouped("send_recv", [&](auto&& call) {
      if (send_buf.numel() > 0)
        call(ncclSend(send_buf.raw(), count(send_buf), nccl_type(send_buf.dtype()), dst, comm_, issue_));
      if (recv_buf.numel() > 0)
        call(ncclRecv(recv_buf.raw(), count(recv_buf), nccl_type(recv_buf.dtype()), src, comm_, issue_));
    });
  }

  void do_broadcast(const Tensor& buf, int root) override {
    enter("broadcast");
    settle(ncclBroadcast(buf.raw(), buf.raw(), count(buf), nccl_type(buf.dtype()), root, comm_, issue_));
  }

  // NCCL has no barrier: a one-element all-reduce that every member must join, waited for.
  void do_barrier() override {
    enter("barrier");
    settle(ncclAllReduce(scratch_.raw(), scratch_.raw(), 1, ncclFloat32, ncclSum, comm_, issue_));
    wait();
  }

 private:
  static std::size_t count(const Tensor& t) { return static_cast<std::size_t>(t.numel()); }

  // Every op starts here: the communicator must still be alive, and NCCL calls act on the current device.
  // A started op goes on the side stream, behind what the compute stream has queued so far.
  void enter(const char* op) {
    if (!comm_) fail(op, "the communicator was aborted after an earlier failure and cannot be used again");
    last_op_ = op;
    R1_CUDA(cudaSetDevice(device()));
    issue_ = stream_;
    if (!starting()) return;
    if (!side_) {  // made on first use, at the device's highest priority so the exchange is not starved
      int least = 0, greatest = 0;
      R1_CUDA(cudaDeviceGetStreamPriorityRange(&least, &greatest));
      R1_CUDA(cudaStreamCreateWithPriority(&side_, cudaStreamNonBlocking, greatest));
      R1_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      R1_CUDA(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    }
    // Mark the side stream after the previous started op, so that it can be finished alone.
    if (last_started_ > 0 && (marks_.empty() || marks_.back().through < last_started_)) {
      cudaEvent_t e = nullptr;
      if (spare_.empty()) {
        R1_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      } else {
        e = spare_.back();
        spare_.pop_back();
      }
      R1_CUDA(cudaEventRecord(e, side_));
      marks_.push_back({last_started_, e});
    }
    last_started_ = starting_number();
    R1_CUDA(cudaEventRecord(ready_, stream_));
    R1_CUDA(cudaStreamWaitEvent(side_, ready_, 0));
    issue_ = side_;
  }

  void destroy_side_stream() {
    if (!side_) return;
    cudaSetDevice(device());
    cudaEventDestroy(ready_);  // the stream and events are released once queued work is done
    cudaEventDestroy(done_);
    for (const Mark& m : marks_) cudaEventDestroy(m.event);
    for (cudaEvent_t e : spare_) cudaEventDestroy(e);
    marks_.clear();
    spare_.clear();
    cudaStreamDestroy(side_);
    side_ = nullptr;
  }

  // A non-blocking NCCL call returns ncclInProgress until its host-side work (connection setup,
  // enqueueing) is done; nothing else may be issued on the communicator before then.
  void settle(ncclResult_t r) {
    const Stopwatch clock;
    while (r == ncclInProgress) {
      const double waited = clock.seconds();
      if (timeout_s() > 0 && waited > timeout_s()) {
        abort();
        timed_out(last_op_, waited);
      }
      std::this_thread::yield();
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
      if (q != ncclSuccess) r = q;
    }
    if (r != ncclSuccess) abort_and_fail(r);
  }

  // The calls inside a group only record their work; ncclGroupEnd is what issues it and is settled.
  template <class Issue> void grouped(const char* op, Issue&& issue) {
    enter(op);
    ncclResult_t first = ncclGroupStart();
    issue([&](ncclResult_t r) {
      if (accepted(first) && !accepted(r)) first = r;
    });
    const ncclResult_t end = ncclGroupEnd();
    if (!accepted(first)) abort_and_fail(first);
    settle(end);
  }

  [[noreturn]] void abort_and_fail(ncclResult_t r) {
    std::string why = ncclGetErrorString(r);
    if (comm_) {
      const char* last = ncclGetLastError(comm_);
      if (last && *last) why += std::string(": ") + last;
    }
    abort();
    fail(last_op_, why);
  }

  void abort() {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  int device() const { return ctx_.device(); }

  kernels::Context ctx_;  // keeps the stream and the allocator alive
  std::unique_ptr<Communicator> boot_;  // the MPI communicator of the same group (host_comm)
  cudaStream_t stream_ = nullptr;  // the compute stream
  cudaStream_t side_ = nullptr;    // started ops (non-blocking: host copies on the legacy stream skip it)
  cudaStream_t issue_ = nullptr;   // the stream of the op being issued
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  // Events on the side stream after started ops that later ones followed (`through`: the op's number).
  struct Mark {
    std::int64_t through;
    cudaEvent_t event;
  };
  std::deque<Mark> marks_;
  std::vector<cudaEvent_t> spare_;  // recorded marks that were waited for, to record again
  std::int64_t last_started_ = 0;   // the number of the latest op started on the side stream
  ncclComm_t comm_ = nullptr;
  Tensor scratch_;
  const char* last_op_ = "init";
};
}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, const kernels::Context& ctx) {
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), ctx);
}

}  // namespace r1::parallel
