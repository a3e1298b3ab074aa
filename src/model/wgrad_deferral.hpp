// The deferral of weight-gradient GEMMs (dW += dy^T x) out of a backward pass, for pipeline schedules that
// split the backward into B (input gradients) and W (weight gradients, run later to fill bubbles).
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

namespace r1 {

// The weight-gradient work one backward deferred, in the order the backward issued it. Each piece owns
// what it reads (copies of dy and x), so the backward may free or overwrite its buffers.
class WgradQueue {
 public:
  void push(std::function<void()> work, std::size_t bytes_held);
  // Runs every piece in issue order (nothing is deferred meanwhile) and empties the queue.
  void drain();
  bool empty() const { return work_.empty(); }
  std::size_t bytes_held() const { return bytes_; }  // the copies kept alive until drain()

 private:
  std::vector<std::function<void()>> work_;
  std::size_t bytes_ = 0;
};

// While alive, linear_wgrad and grouped_linear_wgrad on this thread push their GEMMs to `queue` instead
// of running them (model/linear.cpp). Not nestable.
class DeferWgrad {
 public:
  explicit DeferWgrad(WgradQueue& queue);
  ~DeferWgrad();
  DeferWgrad(const DeferWgrad&) = delete;
  DeferWgrad& operator=(const DeferWgrad&) = delete;
};

// The queue of the DeferWgrad alive on this thread, or null: run the weight gradient now.
WgradQueue* deferring_wgrad();

}  // namespace r1
