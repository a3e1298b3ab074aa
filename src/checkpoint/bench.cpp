// r1hpc-bench-checkpoint: checkpoint throughput on this node's disk, beside the disk's raw ceiling.
// Every rank holds an equal share of a model-shaped state (f32 matrices of 4096 columns plus a few
// vectors) and saves it through the Checkpointer: a synchronous save (write GB/s), an asynchronous save
// (how long training is blocked), then loads of the whole state with the files' pages dropped from the
// page cache first (cold GB/s) and kept (warm GB/s). The raw ceiling is one plain file per rank of the
// same bytes written with pwrite + fsync and read back cold.
//   mpirun -n RANKS r1hpc-bench-checkpoint [DIR [GIB_PER_RANK]]
//   (default runs/bench-checkpoint and 1 GiB per rank; DIR is emptied first and removed after)
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "core/error.hpp"

namespace fs = std::filesystem;
using namespace r1;

namespace {

constexpr std::int64_t kCols = 4096;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The slowest rank's time of f(), ranks started together.
template <class F> double timed(F&& f) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now_s();
  f();
  double t = now_s() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}

// Drops the cached pages of every regular file under `dir` (they were fsynced, so they are clean): the
// next read comes from the disk, as a restart on a fresh node would.
void drop_cache(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// This rank's share: matrices of kCols columns, rank-major rows of each global tensor, plus one vector.
std::vector<ckpt::Slice> make_state(std::int64_t bytes, int rank, int ranks, bool fill) {
  constexpr std::int64_t kRowsPerMatrix = 2048;  // 32 MiB matrices, as a large model's projections
  const std::int64_t matrices = std::max<std::int64_t>(1, bytes / (kRowsPerMatrix * kCols * 4));
  std::vector<ckpt::Slice> out;
  for (std::int64_t m = 0; m < matrices; ++m) {
    Tensor t = Tensor::host({kRowsPerMatrix, kCols}, DType::f32);
    if (fill) {
      float* p = t.data<float>();
      for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>((i * 2654435761u + m + rank) % 1000) * 1e-3f;
    }
    out.push_back({"model/w" + std::to_string(m), Shape{kRowsPerMatrix * ranks, kCols}, {rank * kRowsPerMatrix, 0}, t});
  }
  Tensor v = Tensor::host({kCols}, DType::f32);
  if (fill) std::memset(v.raw(), 0, v.nbytes());
  out.push_back({"model/norm", Shape{kCols * ranks}, {rank * kCols}, v});
  return out;
}

// One plain file per rank, written with pwrite in 64 MiB pieces and fsynced, then read back cold.
std::pair<double, double> raw_ceiling(const fs::path& dir, std::int64_t bytes, int rank) {
  const fs::path path = dir / ("raw-" + std::to_string(rank));
  std::vector<char> buf(64u << 20, 1);
  double write_s = timed([&] {
    const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    R1_REQUIRE(fd >= 0, "cannot create ", path.string());
    for (std::int64_t off = 0; off < bytes; off += static_cast<std::int64_t>(buf.size()))
      R1_REQUIRE(::pwrite(fd, buf.data(), buf.size(), off) == static_cast<ssize_t>(buf.size()), "pwrite ", path.string());
    ::fsync(fd);
    ::close(fd);
  });
  drop_cache(dir);
  double read_s = timed([&] {
    const int fd = ::open(path.c_str(), O_RDONLY);
    for (std::int64_t off = 0; off < bytes; off += static_cast<std::int64_t>(buf.size()))
      R1_REQUIRE(::pread(fd, buf.data(), buf.size(), off) > 0, "pread ", path.string());
    ::close(fd);
  });
  fs::remove(path);
  return {write_s, read_s};
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  try {
    const fs::path dir = argc > 1 ? argv[1] : "runs/bench-checkpoint";
    const double gib = argc > 2 ? std::stod(argv[2]) : 1.0;
    if (rank == 0) {
      fs::remove_all(dir);
      fs::create_directories(dir);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const auto state = make_state(static_cast<std::int64_t>(gib * (1 << 30)), rank, ranks, true);
    std::int64_t bytes = 0;
    for (const auto& s : state) bytes += static_cast<std::int64_t>(s.data.nbytes());
    const double total_gb = static_cast<double>(bytes) * ranks / 1e9;

    const auto [raw_w, raw_r] = raw_ceiling(dir, bytes, rank);
    ckpt::Meta meta;
    meta.stage = "bench";
    ckpt::SaveReport sync_report, async_report;
    double async_written_s = 0;
    {
      ckpt::Checkpointer sync(dir / "sync", MPI_COMM_WORLD, 1, false);
      meta.step = 1;
      sync_report = sync.save(meta, state);
    }
    {
      ckpt::Checkpointer async(dir / "async", MPI_COMM_WORLD, 1, true);
      meta.step = 2;
      async_report = async.save(meta, state);  // the first save also pins its staging buffers
      async.finish();
      meta.step = 3;
      async_report = async.save(meta, state);
      async_written_s = async.finish()->write_s;
    }
    auto wanted = make_state(static_cast<std::int64_t>(gib * (1 << 30)), rank, ranks, false);
    const fs::path ckpt_dir = ckpt::step_dir(dir / "sync", 1);
    if (rank == 0) drop_cache(ckpt_dir);
    const double cold = timed([&] { ckpt::load(ckpt_dir, wanted); });
    const double warm = timed([&] { ckpt::load(ckpt_dir, wanted); });
    for (std::size_t i = 0; i < state.size(); ++i)
      R1_REQUIRE(std::memcmp(state[i].data.raw(), wanted[i].data.raw(), state[i].data.nbytes()) == 0, "the loaded ",
                 state[i].name, " differs from the saved one");
    if (rank == 0) {
      std::printf("checkpoint bench: %d rank(s), %.2f GB in all (%.2f GiB per rank), dir %s\n", ranks, total_gb, gib,
                  dir.c_str());
      std::printf("  %-34s %8.3f s %8.2f GB/s\n", "raw pwrite+fsync (ceiling)", raw_w, total_gb / raw_w);
      std::printf("  %-34s %8.3f s %8.2f GB/s\n", "raw read, cold (ceiling)", raw_r, total_gb / raw_r);
      std::printf("  %-34s %8.3f s %8.2f GB/s\n", "sync save (write + commit)", sync_report.blocking_s,
                  total_gb / sync_report.blocking_s);
      std::printf("  %-34s %8.3f s (written in %.3f s)\n", "async save, training blocked", async_report.blocking_s,
                  async_written_s);
      std::printf("  %-34s %8.3f s %8.2f GB/s\n", "load, cold page cache", cold, total_gb / cold);
      std::printf("  %-34s %8.3f s %8.2f GB/s\n", "load, warm page cache", warm, total_gb / warm);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) fs::remove_all(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "r1hpc-bench-checkpoint: rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return 0;
}
