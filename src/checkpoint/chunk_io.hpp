// Fast paths for the tensor data of checkpoint shards (docs/checkpoint.md, "Speed"): each dataset is
// chunked so that every chunk is one contiguous run of the row-major tensor, and carries HDF5's Fletcher32
// filter. Writing computes the checksums on worker threads and hands HDF5 finished chunks
// (H5Dwrite_chunk); reading finds each chunk's place in the file (H5Dget_chunk_info_by_coord) and reads,
// checks and scatters chunks on worker threads with plain pread, outside HDF5's global lock. The files
// stay ordinary HDF5: h5py and h5dump read them and check the same checksums.
#pragma once
#include <hdf5.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace r1::ckpt {

// HDF5's Fletcher32 over `n` bytes: 16-bit big-endian words, both sums folded every 360 words, an odd
// last byte taken as the high byte of a word.
std::uint32_t fletcher32(const void* data, std::size_t n);

// Worker threads for checkpoint I/O (default: the CPUs this process may run on, between 2 and 8).
int io_threads();
void set_io_threads(int n);  // 0 restores the default

// Runs f(i) for i in [0, n) on up to io_threads() threads (the caller's among them); the first exception
// is rethrown here, and no new index starts after it.
template <class F> void io_parallel_for(std::int64_t n, F&& f) {
  const int threads = static_cast<int>(std::min<std::int64_t>(io_threads(), n));
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (std::int64_t i; (i = next++) < n;) {
      try {
        f(i);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// The chunking of a dataset whose chunks are contiguous runs: chunk = (1, .., 1, rows, dims[split+1..]).
struct ChunkGrid {
  std::vector<hsize_t> dims, chunk;
  std::size_t elem = 0;      // bytes per element
  int split = -1;            // the one dimension cut into pieces of `rows`; -1: one chunk holds all
  std::int64_t trail = 1;    // elements per unit of dimension `split` (the product of later dims)

  // chunk_dims' shape (at most ~4 MiB per chunk, trailing dimensions kept whole where they fit).
  static ChunkGrid plan(const std::vector<hsize_t>& dims, std::size_t elem);
  // The grid of an existing dataset when its chunks are contiguous runs; empty `dims` otherwise.
  static ChunkGrid of(const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk, std::size_t elem);

  std::int64_t count() const;                    // chunks in the dataset
  std::int64_t chunk_elems() const;              // elements of a full chunk (what the file stores)
  std::vector<hsize_t> offset(std::int64_t k) const;  // chunk k's first coordinates
  std::int64_t first(std::int64_t k) const;      // chunk k's first element, row-major
  std::int64_t valid(std::int64_t k) const;      // chunk k's elements inside the dataset
};

// Writes `data` (the whole dataset, row-major) into the chunked, Fletcher32-filtered dataset `ds`.
// Errors name `where`.
void write_chunks(hid_t ds, const ChunkGrid& grid, const char* data, const std::string& where);

// Reads boxes of source datasets (of the fast layout) into row-major destination arrays: add() finds the
// chunks a box touches (HDF5 calls, on this thread), run() reads every chunk added so far on the I/O
// threads at once, in file order, checking each checksum and scattering its part of the box. Reading the
// chunks of many tensors together keeps the disk busy where one tensor at a time would leave it idle
// between tensors. Errors name the box's `where`, the shard and the chunk.
class ChunkReader {
 public:
  ChunkReader() = default;
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;
  ~ChunkReader();

  // Plans the box [start, start + extent) of the source dataset `ds` of the shard file `file` into `dst`
  // (shape `dst_dims`, at `dst_start`; it must stay valid until run()). Returns false, having planned
  // nothing, when the dataset is not of the fast layout (the caller falls back to H5Dread).
  bool add(hid_t ds, const std::string& file, const std::vector<hsize_t>& start, const std::vector<hsize_t>& extent,
           char* dst, const std::vector<hsize_t>& dst_dims, const std::vector<hsize_t>& dst_start, std::size_t elem,
           const std::string& where);
  std::size_t planned_bytes() const { return planned_bytes_; }  // chunk bytes the next run() reads
  void run();

 private:
  struct Box {
    ChunkGrid grid;
    std::vector<hsize_t> start, extent, dst_dims, dst_start;
    char* dst;
    int fd;
    std::string file, where;
  };
  struct Read {
    std::size_t box;
    std::int64_t k;  // the chunk's index in its grid
    haddr_t addr;
    hsize_t bytes;
  };
  int fd_of(const std::string& file, const std::string& where);
  std::vector<Box> boxes_;
  std::vector<Read> reads_;
  std::vector<std::pair<std::string, int>> fds_;  // the shards opened, kept open across runs
  std::size_t planned_bytes_ = 0;
};

// One box read at once (ChunkReader::add then run); false when the dataset is not of the fast layout.
bool read_box(hid_t ds, const std::string& file, const std::vector<hsize_t>& start, const std::vector<hsize_t>& extent,
              char* dst, const std::vector<hsize_t>& dst_dims, const std::vector<hsize_t>& dst_start, std::size_t elem,
              const std::string& where);

}  // namespace r1::ckpt
