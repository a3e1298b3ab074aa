// SideCopy: device-to-host copies on a stream of their own, so that the work a context queues after them
// runs beside them (a checkpoint's copies of the weights beside the next step's forward and backward).
#pragma once
#include <memory>

#include "core/tensor.hpp"

namespace r1::kernels {

class SideCopy {
 public:
  SideCopy();
  ~SideCopy();  // waits for the copies in flight
  SideCopy(const SideCopy&) = delete;
  SideCopy& operator=(const SideCopy&) = delete;

  // Queues dst <- src: dst on the host (pinned, for the copy to run beside other work), src anywhere (a
  // host src is copied at once). The first copy after a wait() starts once all work queued so far on the
  // device, on any stream, is done (a device synchronisation). src is kept alive until wait(); nothing may
  // write src, nor read dst, before wait() returns.
  void add(const Tensor& dst, const Tensor& src);
  // Blocks until every copy queued so far is done; returns the seconds it waited. From any thread.
  double wait();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace r1::kernels
