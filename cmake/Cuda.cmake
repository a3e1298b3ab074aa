# Decides R1HPC_WITH_CUDA from R1HPC_ENABLE_CUDA and enables the CUDA language when it is on; finds cuDNN
# (R1HPC_WITH_CUDNN) in CUDA builds.
include(CheckLanguage)
set(R1HPC_WITH_CUDA OFF)
set(R1HPC_WITH_CUDNN OFF)
if(NOT R1HPC_ENABLE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(R1HPC_WITH_CUDA ON)
  elseif(R1HPC_ENABLE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "R1HPC_ENABLE_CUDA=ON but no CUDA compiler (nvcc) was found. "
                        "Install the CUDA toolkit, put nvcc on PATH or set CUDACXX, or configure with -DR1HPC_ENABLE_CUDA=OFF.")
  endif()
endif()

if(R1HPC_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  # CMake 3.25 predates nvcc 13 and does not know its C++20 flag: tell it.
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)  # one cudart for .cu and .cpp objects
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  add_compile_definitions(R1HPC_HAVE_CUDA=1)
  # cuDNN (backend graph API, for fused attention: kernels/cuda/cudnn_attention.hpp) where the toolkit or the
  # system has it; without it the CUDA build runs our own attention kernel only. Targets that use it define
  # R1HPC_HAVE_CUDNN themselves (r1hpc_kernels, its attention test and benchmark).
  find_path(R1HPC_CUDNN_INCLUDE_DIR cudnn_graph.h HINTS ${CUDAToolkit_INCLUDE_DIRS} PATHS /usr/include
            PATH_SUFFIXES x86_64-linux-gnu)
  find_library(R1HPC_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDAToolkit_LIBRARY_DIR}
               PATHS /usr/lib/x86_64-linux-gnu)
  if(R1HPC_CUDNN_INCLUDE_DIR AND R1HPC_CUDNN_LIBRARY)
    set(R1HPC_WITH_CUDNN ON)
    message(STATUS "r1hpc: cuDNN ${R1HPC_CUDNN_LIBRARY} (headers ${R1HPC_CUDNN_INCLUDE_DIR})")
  else()
    set(R1HPC_WITH_CUDNN OFF)
    message(STATUS "r1hpc: no cuDNN found: attention runs our own kernel only")
  endif()
endif()
