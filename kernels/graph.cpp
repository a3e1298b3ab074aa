#include "kernels/graph.hpp"

#include "core/error.hpp"

#if defined(R1HPC_HAVE_CUDA)
#include "kernels/cuda/resources.hpp"
#endif

namespace r1::kernels {

#if defined(R1HPC_HAVE_CUDA)
struct Graph::State {
  Context ctx;
  cudaGraphExec_t exec = nullptr;
  CachingAllocator::Blocks blocks;
};

Graph::Graph(const Context& ctx, const std::function<void()>& work) : s_(std::make_unique<State>()) {
  R1_CHECK(ctx.is_cuda(), "a CUDA graph needs a CUDA context");
  s_->ctx = ctx;
  CudaResources& r = ctx.cuda_resources();
  // Relaxed: work may ask cuBLASLt for heuristics or grow the allocator's pool (cudaMalloc) while capturing.
  R1_CUDA(cudaStreamBeginCapture(r.stream, cudaStreamCaptureModeRelaxed));
  r.allocator->begin_private_pool();
  cudaGraph_t graph = nullptr;
  try {
    work();
  } catch (...) {
    cudaStreamEndCapture(r.stream, &graph);
    if (graph) cudaGraphDestroy(graph);
    r.allocator->end_private_pool();
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(r.stream, &graph);
  s_->blocks = r.allocator->end_private_pool();
  if (ended != cudaSuccess) {
    r.allocator->give_back(s_->blocks);
    R1_FAIL(cuda, "cudaStreamEndCapture: ", cudaGetErrorString(ended), " (the captured work synchronised or copied)");
  }
  const cudaError_t made = cudaGraphInstantiate(&s_->exec, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    r.allocator->give_back(s_->blocks);
    R1_FAIL(cuda, "cudaGraphInstantiate: ", cudaGetErrorString(made));
  }
}

Graph::~Graph() {
  if (!s_) return;
  CudaResources& r = s_->ctx.cuda_resources();
  cudaGraphExecDestroy(s_->exec);
  // Replays still queued run before anything the stream does later with these blocks.
  r.allocator->give_back(s_->blocks);
}

void Graph::launch() const { R1_CUDA(cudaGraphLaunch(s_->exec, s_->ctx.cuda_resources().stream)); }
#else
struct Graph::State {};
Graph::Graph(const Context&, const std::function<void()>&) {
  R1_FAIL(internal, "CUDA graphs need a build with CUDA (R1HPC_ENABLE_CUDA=ON)");
}
Graph::~Graph() = default;
void Graph::launch() const {}
#endif

}  // namespace r1::kernels
