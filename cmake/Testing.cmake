# r1hpc_add_test(NAME SOURCES src... [LIBS lib...] [LABELS label...] [RANKS n...] [ENV var=value...])
# Builds one GoogleTest executable (with the MPI-aware main) and registers it with CTest:
#  - without RANKS: one test NAME run directly (still with MPI initialised, one rank);
#  - with RANKS: one test NAME_npN per rank count under mpiexec --oversubscribe, labelled `mpi`.
find_package(GTest REQUIRED)

add_library(r1hpc_test_main STATIC ${PROJECT_SOURCE_DIR}/tests/support/gtest_mpi_main.cpp)
target_link_libraries(r1hpc_test_main PUBLIC GTest::gtest MPI::MPI_CXX r1hpc_core)
target_include_directories(r1hpc_test_main PUBLIC ${PROJECT_SOURCE_DIR}/tests)

# Running as root (containers, CI) needs Open MPI's consent; yielding keeps oversubscribed ranks fair;
# single-process tests start MPI without a helper daemon (faster, and no start-up races between tests).
set(R1HPC_MPI_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
    OMPI_MCA_ess_singleton_isolated=1
    OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1)

function(r1hpc_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS;RANKS;ENV" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE r1hpc_test_main ${T_LIBS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT T_RANKS)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" ENVIRONMENT "${R1HPC_MPI_TEST_ENV};${T_ENV}" TIMEOUT 600)
    return()
  endif()
  foreach(n IN LISTS T_RANKS)
    add_test(NAME ${name}_np${n}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} --oversubscribe ${MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:${name}> ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${name}_np${n} PROPERTIES LABELS "mpi;${T_LABELS}" PROCESSORS ${n}
                         ENVIRONMENT "${R1HPC_MPI_TEST_ENV};${T_ENV}" TIMEOUT 600)
  endforeach()
endfunction()
