// Per-device CUDA state owned by a kernels::Context: stream, cuBLASLt and cuBLAS handles, workspace, allocator,
// and a cache of cuBLASLt algorithm choices. Also the CUDA error-check macros used by every .cu file.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

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
};

}  // namespace r1::kernels
