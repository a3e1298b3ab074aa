#include "kernels/context.hpp"

#include <cstring>

#if defined(R1HPC_HAVE_CUDA)
#include "kernels/cuda/resources.hpp"
#endif

namespace r1::kernels {

Context Context::cpu() {
  Context c;
  c.alloc_ = host_allocator();
  return c;
}

#if defined(R1HPC_HAVE_CUDA)
Context Context::cuda(int device) {
  Context c;
  c.cuda_ = std::make_shared<CudaResources>(device);
  c.alloc_ = c.cuda_->allocator;
  return c;
}
#endif

int Context::cuda_device_count() {
#if defined(R1HPC_HAVE_CUDA)
  return CudaResources::device_count();
#else
  return 0;
#endif
}

const char* attention_backend_name(AttentionBackend b) {
  switch (b) {
    case AttentionBackend::own: return "own";
    case AttentionBackend::cudnn: return "cudnn";
    case AttentionBackend::cudnn_nondeterministic: return "cudnn_nondeterministic";
  }
  return "?";
}

bool cudnn_attention_built() {
#if defined(R1HPC_HAVE_CUDNN)
  return true;
#else
  return false;
#endif
}

void Context::set_attention_backend(AttentionBackend b) {
#if !defined(R1HPC_HAVE_CUDNN)
  R1_REQUIRE(b == AttentionBackend::own, "attention backend ", attention_backend_name(b),
             " requested, but this build has no cuDNN (configure with the CUDA toolkit's cuDNN found)");
#endif
  attention_backend_ = b;
}

CudaResources& Context::cuda_resources() const {
  R1_CHECK(cuda_ != nullptr, "CUDA resources requested from a CPU context");
  return *cuda_;
}

Tensor Context::zeros(const Shape& shape, DType dtype) const {
  Tensor t = empty(shape, dtype);
  if (!is_cuda()) {
    if (t.nbytes()) std::memset(t.raw(), 0, t.nbytes());
    return t;
  }
#if defined(R1HPC_HAVE_CUDA)
  cuda_->memset_zero(t.raw(), t.nbytes());
#endif
  return t;
}

Tensor Context::to_here(const Tensor& t) const {
  Tensor out = empty(t.shape(), t.dtype());
  copy(out, t);
  return out;
}

void Context::synchronize() const {
#if defined(R1HPC_HAVE_CUDA)
  if (cuda_) cuda_->synchronize();
#endif
}

void Context::use_on_this_thread() const {
#if defined(R1HPC_HAVE_CUDA)
  if (cuda_) R1_CUDA(cudaSetDevice(device()));
#endif
}

void require_here(const Context& ctx, const char* op, const char* name, const Tensor& t) {
  R1_REQUIRE(t.defined(), op, ": tensor ", name, " is undefined");
  R1_REQUIRE(t.location() == ctx.location() && (!ctx.is_cuda() || t.device() == ctx.device()), op,
             ": tensor ", name, " (", t.str(), ") is not in the memory this op runs on (",
             ctx.is_cuda() ? "cuda:" + std::to_string(ctx.device()) : std::string("host"), ")");
}

}  // namespace r1::kernels
