#include "kernels/side_copy.hpp"

#include <chrono>
#include <mutex>
#include <vector>

#include "core/error.hpp"

#if defined(R1HPC_HAVE_CUDA)
#include "kernels/cuda/resources.hpp"
#endif

namespace r1::kernels {

struct SideCopy::State {
  std::mutex mutex;
  std::vector<Tensor> sources;  // kept alive (their memory not reused) until the copies are done
#if defined(R1HPC_HAVE_CUDA)
  int device = -1;
  cudaStream_t stream = nullptr;  // non-blocking: not ordered with the legacy default stream's work
#endif
};

SideCopy::SideCopy() : s_(std::make_unique<State>()) {}

SideCopy::~SideCopy() {
#if defined(R1HPC_HAVE_CUDA)
  if (s_->stream == nullptr) return;
  cudaStreamSynchronize(s_->stream);
  cudaStreamDestroy(s_->stream);
#endif
}

void SideCopy::add(const Tensor& dst, const Tensor& src) {
  R1_CHECK(dst.on_host() && dst.dtype() == src.dtype() && dst.numel() == src.numel(), "side copy from ", src.str(), " to ",
           dst.str());
  if (src.on_host()) {
    copy(dst, src);
    return;
  }
#if defined(R1HPC_HAVE_CUDA)
  const std::lock_guard<std::mutex> lock(s_->mutex);
  if (s_->stream == nullptr) {
    int current = 0;
    R1_CUDA(cudaGetDevice(&current));
    R1_CUDA(cudaSetDevice(src.device()));
    R1_CUDA(cudaStreamCreateWithFlags(&s_->stream, cudaStreamNonBlocking));
    R1_CUDA(cudaSetDevice(current));
    s_->device = src.device();
  }
  R1_CHECK(src.device() == s_->device, "side copy from ", src.str(), ": this SideCopy's stream is on device ", s_->device);
  if (s_->sources.empty()) R1_CUDA(cudaDeviceSynchronize());
  s_->sources.push_back(src);
  R1_CUDA(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToHost, s_->stream));
#else
  copy(dst, src);
#endif
}

double SideCopy::wait() {
  const auto start = std::chrono::steady_clock::now();
#if defined(R1HPC_HAVE_CUDA)
  cudaStream_t stream = nullptr;
  std::size_t queued = 0;
  {
    const std::lock_guard<std::mutex> lock(s_->mutex);
    stream = s_->stream;
    queued = s_->sources.size();
  }
  if (stream != nullptr) R1_CUDA(cudaStreamSynchronize(stream));
  const std::lock_guard<std::mutex> lock(s_->mutex);
  s_->sources.erase(s_->sources.begin(), s_->sources.begin() + static_cast<std::ptrdiff_t>(queued));  // done
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace r1::kernels
