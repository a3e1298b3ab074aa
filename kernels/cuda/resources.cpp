#include "kernels/cuda/resources.hpp"

namespace r1::kernels {

CudaResources::CudaResources(int dev) : device(dev) {
  const int n = device_count();
  R1_REQUIRE(dev >= 0 && dev < n, "CUDA device ", dev, " requested but ", n, " device(s) are visible");
  R1_CUDA(cudaSetDevice(device));
  R1_CUDA(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device));
  R1_CUDA(cudaStreamCreate(&stream));
  R1_CUBLAS(cublasLtCreate(&lt));
  allocator = std::make_shared<CachingAllocator>(cuda_raw_memory(device), Location::device, device);
  workspace_bytes = 64u << 20;  // cuBLASLt's Hopper kernels want up to 32 MiB; split-K more
  workspace = allocator->allocate(workspace_bytes);
  R1_CUBLAS(cublasCreate(&blas));
  R1_CUBLAS(cublasSetStream(blas, stream));
  R1_CUBLAS(cublasSetWorkspace(blas, workspace, workspace_bytes));
  R1_CUDA(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
  for (int i = 0; i < kSideStreams; ++i) {
    R1_CUDA(cudaStreamCreate(&side_streams[i]));
    R1_CUDA(cudaEventCreateWithFlags(&side_done[i], cudaEventDisableTiming));
  }
}

CudaResources::~CudaResources() {
  cudaSetDevice(device);
  cudaStreamSynchronize(stream);
  fp8_lt.reset();
  cudnn_attention.reset();
  for (int i = 0; i < kSideStreams; ++i) {
    cudaStreamSynchronize(side_streams[i]);
    if (side_workspaces[i]) allocator->deallocate(side_workspaces[i], kSideWorkspaceBytes);
    cudaEventDestroy(side_done[i]);
    cudaStreamDestroy(side_streams[i]);
  }
  cudaEventDestroy(forked);
  cublasDestroy(blas);
  allocator->deallocate(workspace, workspace_bytes);
  cublasLtDestroy(lt);
  cudaStreamDestroy(stream);
}

int CudaResources::device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void CudaResources::synchronize() const { R1_CUDA(cudaStreamSynchronize(stream)); }

int CudaResources::fork(int lanes) {
  if (lanes == 0) return 0;
  if (!side_workspaces[lanes - 1]) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    R1_CUDA(cudaStreamIsCapturing(stream, &capture));
    if (capture != cudaStreamCaptureStatusNone) return 0;
    for (int i = 0; i < lanes; ++i)
      if (!side_workspaces[i]) side_workspaces[i] = allocator->allocate(kSideWorkspaceBytes);
  }
  R1_CUDA(cudaEventRecord(forked, stream));
  for (int i = 0; i < lanes; ++i) R1_CUDA(cudaStreamWaitEvent(side_streams[i], forked, 0));
  return lanes;
}

void CudaResources::join(int lanes) const {
  for (int i = 0; i < lanes; ++i) {
    R1_CUDA(cudaEventRecord(side_done[i], side_streams[i]));
    R1_CUDA(cudaStreamWaitEvent(stream, side_done[i], 0));
  }
}

void CudaResources::memset_zero(void* p, std::size_t bytes) const {
  if (bytes) R1_CUDA(cudaMemsetAsync(p, 0, bytes, stream));
}

}  // namespace r1::kernels
