// A stop signal delivered to one rank is seen by every rank at the next agreement point.
#include <gtest/gtest.h>
#include <mpi.h>

#include <csignal>

#include "run/signals.hpp"

TEST(Signals, OneRanksSigusr1StopsEveryRank) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  r1::install_stop_handlers();
  EXPECT_FALSE(r1::agree_on_stop(MPI_COMM_WORLD));
  if (rank == size - 1) std::raise(SIGUSR1);
  EXPECT_EQ(r1::stop_signalled(), rank == size - 1);
  EXPECT_TRUE(r1::agree_on_stop(MPI_COMM_WORLD));
}
