// GoogleTest main for every r1hpc test: initialises MPI, prints the full report from rank 0 only (other
// ranks print just their failures, tagged with the rank), and makes all ranks agree on the outcome.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "core/log.hpp"

namespace {
// Non-zero ranks: report only failed assertions, each prefixed with the rank.
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                 r.line_number(), r.summary());
    std::fflush(stderr);
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  int provided = 0;  // the overlapped pipeline pairs call MPI from two threads, one at a time
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  r1::logger().configure(rank, size, r1::LogLevel::warn);
  testing::InitGoogleTest(&argc, argv);
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int local = RUN_ALL_TESTS();
  int global = 0;
  MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && global != local)
    std::fprintf(stderr, "[rank 0] another rank failed: the run fails on every rank\n");
  MPI_Finalize();
  return global;
}
