// Execution context for kernels: where ops run (CPU or one CUDA device), with the device's stream,
// cuBLASLt handle, workspace and caching allocator. Passed explicitly to every op.
#pragma once
#include <cstdint>
#include <memory>

#include "core/allocator.hpp"
#include "core/tensor.hpp"

namespace r1::kernels {

struct CudaResources;  // defined in kernels/cuda/resources.hpp (CUDA builds only)

// Which implementation runs fused causal attention (kernels/attention.hpp) on a CUDA context:
//   own:   our kernel (kernels/cuda/attention.cu), the default;
//   cudnn: cuDNN's fused flash attention (kernels/cuda/cudnn_attention.hpp) with the backward graph that writes
//          dq without atomics, where cuDNN takes the call, else our kernel, with a one-time warning naming why;
//   cudnn_nondeterministic: the same with cuDNN's atomic f32 dq accumulation: not the same bits run to run.
// Forward and backward of one call decide from the same tensors and this setting, so the lse one writes is read
// by the same implementation. CPU contexts always run the reference.
enum class AttentionBackend : std::uint8_t { own, cudnn, cudnn_nondeterministic };
const char* attention_backend_name(AttentionBackend b);
bool cudnn_attention_built();  // whether this build has the cuDNN path (cuDNN found at configure time)

class Context {
 public:
  static Context cpu();
#if defined(R1HPC_HAVE_CUDA)
  static Context cuda(int device);  // one blocking stream (ordered with cudaMemcpy), cuBLASLt, allocator
#endif
  static int cuda_device_count();   // 0 without CUDA or without a visible GPU

  Location location() const { return alloc_->location(); }
  bool is_cuda() const { return location() == Location::device; }
  int device() const { return alloc_->device(); }
  const std::shared_ptr<Allocator>& allocator() const { return alloc_; }
  AttentionBackend attention_backend() const { return attention_backend_; }
  // Throws a user error for a cuDNN backend in a build without cuDNN.
  void set_attention_backend(AttentionBackend b);
  CudaResources& cuda_resources() const;

  Tensor empty(const Shape& shape, DType dtype) const { return Tensor::empty(shape, dtype, alloc_); }
  Tensor zeros(const Shape& shape, DType dtype) const;
  // A copy of `t` in this context's memory (a host or device copy).
  Tensor to_here(const Tensor& t) const;
  void synchronize() const;  // waits for the device's queued work; no-op on CPU
  // Makes this context's device current on the calling thread (a second thread that queues its kernels,
  // core/interleave.hpp); no-op on CPU.
  void use_on_this_thread() const;

 private:
  std::shared_ptr<Allocator> alloc_;
  std::shared_ptr<CudaResources> cuda_;
  AttentionBackend attention_backend_ = AttentionBackend::own;
};

// Throws a user error naming `op` and the tensor when `t` does not live where `ctx` runs.
void require_here(const Context& ctx, const char* op, const char* name, const Tensor& t);

}  // namespace r1::kernels
