// The MPI-aware test main: every rank runs the tests, collectives work, and (with
// R1HPC_TEST_FAIL_ON_RANK=r) a failure on rank r alone fails the run on every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>

TEST(MpiMain, EveryRankParticipatesInACollective) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int sum = 0;
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(sum, size * (size - 1) / 2);
}

TEST(MpiMain, FailsOnTheRankNamedByTheEnvironment) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const char* fail = std::getenv("R1HPC_TEST_FAIL_ON_RANK");
  EXPECT_FALSE(fail && std::atoi(fail) == rank) << "planted failure on rank " << rank;
}
