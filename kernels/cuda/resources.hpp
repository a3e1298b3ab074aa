// Per-device CUDA state owned by a kernels::Context: stream, cuBLASLt and cuBLAS handles, workspace, allocator,
// a cache of cuBLASLt algorithm choices, and the library plans kernels make on first use. Also the CUDA
// error-check macros used by every .cu file.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <array>
#include <map>
#include <memory>
#include <tuple>

#include "core/allocator.hpp"
#include "core/error.hpp"

#define R1_CUDA(call)                                                                        \
  do {                                                                                       \
    const cudaError_t r1_e_ = (call);                                                        \
    if (r1_e_ != cudaSuccess) R1_FAIL(cuda, #call, ": ", cudaGetErrorString(r1_e_));        \
  } while (0)
#define R1_CUBLAS(call)                                                                      \
  do {                                                                                       \
    const cublasStatus_t r1_s_ = (call);                                                     \
    if (r1_s_ != CUBLAS_STATUS_SUCCESS)                                                      \
      R1_FAIL(cuda, #call, ": ", cublasLtGetStatusString(r1_s_));                              \
  } while (0)
// After a kernel launch: reports bad launch configurations at the launch site.
#define R1_CUDA_LAUNCHED(name) R1_CUDA(cudaPeekAtLastError())

namespace r1::kernels {

struct CudaResources {
  explicit CudaResources(int device);
  ~CudaResources();
  CudaResources(const CudaResources&) = delete;
  CudaResources& operator=(const CudaResources&) = delete;

  static int device_count();
  void synchronize() const;
  void memset_zero(void* p, std::size_t bytes) const;
  // The first `lanes` side streams wait for the work queued on `stream` so far (fork), and `stream` for
  // theirs (join): independent GEMMs between the two run side by side (the routed experts' FP8 GEMMs). fork
  // returns the lanes forked: 0 where their workspaces are not yet allocated and `stream` is being captured
  // into a CUDA graph (the graph's private pool must not keep them); the work then stays on `stream`.
  int fork(int lanes);
  void join(int lanes) const;

  int device;
  int sm_count = 0;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;  // grouped GEMMs (cublasGemmGroupedBatchedEx), on `stream`, sharing `workspace`
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  std::shared_ptr<CachingAllocator> allocator;
  // cuBLASLt heuristic results, keyed by the full problem description.
  std::map<std::tuple<int, int, int, int, int, long long, long long, long long, long long, long long, long long, int>,
           cublasLtMatmulAlgo_t>
      gemm_algos;
  // Side streams with an event each and their own cuBLASLt workspace (allocated at the first fork: 4 x 32 MiB
  // where FP8 experts run, nothing elsewhere); made once, reused by every fork.
  static constexpr int kSideStreams = 4;
  static constexpr std::size_t kSideWorkspaceBytes = 32u << 20;
  std::array<cudaStream_t, kSideStreams> side_streams{};
  std::array<cudaEvent_t, kSideStreams> side_done{};
  std::array<void*, kSideStreams> side_workspaces{};
  cudaEvent_t forked = nullptr;
  // kernels/cuda/fp8_gemm.cu's cuBLASLt descriptors, layouts and checked algorithms, made on first use.
  std::shared_ptr<void> fp8_lt;
  // kernels/cuda/cudnn_attention.cpp's cuDNN handle and attention plans, made on first use.
  std::shared_ptr<void> cudnn_attention;
};

}  // namespace r1::kernels
