// CUDA graphs: the work a function queues on a context's stream, recorded once and replayed with one
// launch (a decode step is ~200 small kernels whose launch cost exceeds their run time at batch 1).
#pragma once
#include <functional>
#include <memory>

#include "kernels/context.hpp"

namespace r1::kernels {

class Graph {
 public:
  // Records what `work` queues on ctx's stream (nothing runs). Device memory that `work` allocates and
  // frees is kept for the graph's replays (CachingAllocator's private pool) until the graph is destroyed;
  // `work` must not leave anything it allocated alive, nor copy between host and device, nor synchronise.
  // Only on a CUDA context.
  Graph(const Context& ctx, const std::function<void()>& work);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  // Queues one replay on the context's stream.
  void launch() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace r1::kernels
