#include "checkpoint/chunk_io.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <future>

#include "checkpoint/h5.hpp"
#include "core/error.hpp"

namespace r1::ckpt {

static_assert(std::endian::native == std::endian::little, "checkpoint chunks are copied as little-endian bytes");

namespace {

constexpr std::size_t kChunkBytes = 4u << 20;
constexpr std::size_t kTrailer = 4;  // the Fletcher32 filter appends its checksum to each chunk
std::atomic<int> g_io_threads{0};

int default_io_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
  return std::clamp(cpus, 2, 8);
}

std::uint32_t load_le32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Copies the box of extent `ext` at `src_lo` of the row-major array `src` (shape src_dims) to `dst_lo`
// of `dst` (shape dst_dims): one memcpy per run along the last dimension.
void copy_box(const char* src, const std::vector<hsize_t>& src_dims, const std::vector<hsize_t>& src_lo, char* dst,
              const std::vector<hsize_t>& dst_dims, const std::vector<hsize_t>& dst_lo, const std::vector<hsize_t>& ext,
              std::size_t elem) {
  const std::size_t r = ext.size();
  const std::size_t run = static_cast<std::size_t>(ext[r - 1]) * elem;
  std::vector<hsize_t> i(r, 0);
  for (;;) {
    std::size_t s = 0, d = 0;
    for (std::size_t k = 0; k < r; ++k) {
      s = s * src_dims[k] + src_lo[k] + i[k];
      d = d * dst_dims[k] + dst_lo[k] + i[k];
    }
    std::memcpy(dst + d * elem, src + s * elem, run);
    int k = static_cast<int>(r) - 2;  // the odometer over every dimension but the last
    while (k >= 0 && ++i[k] == ext[k]) i[k--] = 0;
    if (k < 0) return;
  }
}

}  // namespace

std::uint32_t fletcher32(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t words = n / 2;
  std::uint32_t sum1 = 0, sum2 = 0;
  while (words > 0) {
    // A block of up to 360 words, as HDF5 folds: sum2 gains block*sum1 plus each word weighted by how
    // many partial sums it enters (block - i), all mod 2^32 as HDF5's running sums are.
    const std::size_t block = std::min<std::size_t>(words, 360);
    std::uint32_t s1 = 0, s2 = 0;
    for (std::size_t i = 0; i < block; ++i) {
      const std::uint32_t w = (static_cast<std::uint32_t>(p[2 * i]) << 8) | p[2 * i + 1];
      s1 += w;
      s2 += static_cast<std::uint32_t>(block - i) * w;
    }
    sum2 += static_cast<std::uint32_t>(block) * sum1 + s2;
    sum1 += s1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    p += 2 * block;
    words -= block;
  }
  if (n % 2) {
    sum1 += static_cast<std::uint32_t>(*p) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

int io_threads() {
  const int n = g_io_threads.load();
  return n > 0 ? n : default_io_threads();
}

void set_io_threads(int n) { g_io_threads = std::max(n, 0); }

ChunkGrid ChunkGrid::plan(const std::vector<hsize_t>& dims, std::size_t elem) {
  ChunkGrid g;
  g.dims = dims;
  g.chunk = dims;
  g.elem = elem;
  std::size_t bytes = elem;
  for (int d = static_cast<int>(dims.size()) - 1; d >= 0; --d) {
    if (bytes * dims[d] <= kChunkBytes) {
      bytes *= dims[d];
      continue;
    }
    g.chunk[d] = std::max<hsize_t>(1, kChunkBytes / bytes);
    for (int e = 0; e < d; ++e) g.chunk[e] = 1;
    g.split = d;
    g.trail = static_cast<std::int64_t>(bytes / elem);
    break;
  }
  return g;
}

ChunkGrid ChunkGrid::of(const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk, std::size_t elem) {
  ChunkGrid g;
  if (dims.empty() || chunk.size() != dims.size()) return g;
  g.elem = elem;
  if (chunk == dims) {
    g.dims = dims;
    g.chunk = chunk;
    return g;
  }
  // The last dimension cut short is the split; every later one whole, every earlier one 1.
  int split = -1;
  for (int d = 0; d < static_cast<int>(dims.size()); ++d)
    if (chunk[d] != dims[d]) split = d;
  for (int d = 0; d < static_cast<int>(dims.size()); ++d) {
    if (d < split && chunk[d] != 1) return g;
    if (d > split && chunk[d] != dims[d]) return g;
    if (d > split) g.trail *= static_cast<std::int64_t>(dims[d]);
  }
  if (chunk[split] > dims[split]) return g;
  g.dims = dims;
  g.chunk = chunk;
  g.split = split;
  return g;
}

std::int64_t ChunkGrid::count() const {
  if (split < 0) return 1;
  std::int64_t n = static_cast<std::int64_t>((dims[split] + chunk[split] - 1) / chunk[split]);
  for (int d = 0; d < split; ++d) n *= static_cast<std::int64_t>(dims[d]);
  return n;
}

std::int64_t ChunkGrid::chunk_elems() const {
  std::int64_t n = 1;
  for (hsize_t c : chunk) n *= static_cast<std::int64_t>(c);
  return n;
}

std::vector<hsize_t> ChunkGrid::offset(std::int64_t k) const {
  std::vector<hsize_t> o(dims.size(), 0);
  if (split < 0) return o;
  const auto per = static_cast<std::int64_t>((dims[split] + chunk[split] - 1) / chunk[split]);
  o[split] = static_cast<hsize_t>(k % per) * chunk[split];
  std::int64_t lead = k / per;
  for (int d = split - 1; d >= 0; --d) {
    o[d] = static_cast<hsize_t>(lead % static_cast<std::int64_t>(dims[d]));
    lead /= static_cast<std::int64_t>(dims[d]);
  }
  return o;
}

std::int64_t ChunkGrid::first(std::int64_t k) const {
  if (split < 0) return 0;
  const auto per = static_cast<std::int64_t>((dims[split] + chunk[split] - 1) / chunk[split]);
  return ((k / per) * static_cast<std::int64_t>(dims[split]) + (k % per) * static_cast<std::int64_t>(chunk[split])) * trail;
}

std::int64_t ChunkGrid::valid(std::int64_t k) const {
  if (split < 0) return chunk_elems();
  const auto o = static_cast<std::int64_t>(offset(k)[split]);
  return std::min<std::int64_t>(static_cast<std::int64_t>(chunk[split]), static_cast<std::int64_t>(dims[split]) - o) * trail;
}

void write_chunks(hid_t ds, const ChunkGrid& grid, const char* data, const std::string& where) {
  // Rounds of chunks: workers fill and checksum the next round while this thread hands the current one
  // to HDF5, which writes under its global lock anyway.
  const std::int64_t n = grid.count(), per_round = 4 * static_cast<std::int64_t>(io_threads());
  const std::size_t full = static_cast<std::size_t>(grid.chunk_elems()) * grid.elem;
  std::vector<std::vector<char>> bufs[2];
  auto fill = [&](int side, std::int64_t round) {
    const std::int64_t lo = round * per_round, count = std::min(per_round, n - lo);
    bufs[side].resize(static_cast<std::size_t>(count));
    io_parallel_for(count, [&](std::int64_t i) {
      std::vector<char>& b = bufs[side][static_cast<std::size_t>(i)];
      b.resize(full + kTrailer);
      const std::size_t valid = static_cast<std::size_t>(grid.valid(lo + i)) * grid.elem;
      std::memcpy(b.data(), data + static_cast<std::size_t>(grid.first(lo + i)) * grid.elem, valid);
      std::memset(b.data() + valid, 0, full - valid);  // an edge chunk is stored whole, its tail as fill
      const std::uint32_t sum = fletcher32(b.data(), full);
      std::memcpy(b.data() + full, &sum, kTrailer);
    });
  };
  const std::int64_t rounds = (n + per_round - 1) / per_round;
  fill(0, 0);
  for (std::int64_t r = 0; r < rounds; ++r) {
    const int side = static_cast<int>(r % 2);
    std::future<void> next;
    if (r + 1 < rounds) next = std::async(std::launch::async, fill, 1 - side, r + 1);
    for (std::size_t i = 0; i < bufs[side].size(); ++i) {
      const std::vector<hsize_t> offset = grid.offset(r * per_round + static_cast<std::int64_t>(i));
      if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset.data(), bufs[side][i].size(), bufs[side][i].data()) < 0) {
        if (next.valid()) next.wait();
        R1_FAIL(io, "cannot write ", where, ": ", h5::error_text());
      }
    }
    if (next.valid()) next.get();
  }
}

ChunkReader::~ChunkReader() {
  for (const auto& f : fds_) ::close(f.second);
}

int ChunkReader::fd_of(const std::string& file, const std::string& where) {
  for (const auto& f : fds_)
    if (f.first == file) return f.second;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) R1_FAIL(io, where, ": cannot open shard ", file, ": ", std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  fds_.emplace_back(file, fd);
  return fd;
}

bool ChunkReader::add(hid_t ds, const std::string& file, const std::vector<hsize_t>& start, const std::vector<hsize_t>& extent,
                      char* dst, const std::vector<hsize_t>& dst_dims, const std::vector<hsize_t>& dst_start, std::size_t elem,
                      const std::string& where) {
  h5::Id dcpl(H5Dget_create_plist(ds), H5Pclose);
  h5::Id type(H5Dget_type(ds), H5Tclose);
  if (!dcpl.ok() || !type.ok() || H5Pget_layout(dcpl.get()) != H5D_CHUNKED || H5Pget_nfilters(dcpl.get()) != 1 ||
      H5Tget_size(type.get()) != elem || (elem > 1 && H5Tget_order(type.get()) != H5T_ORDER_LE))
    return false;
  unsigned flags = 0;
  std::size_t nelmts = 0;
  if (H5Pget_filter2(dcpl.get(), 0, &flags, &nelmts, nullptr, 0, nullptr, nullptr) != H5Z_FILTER_FLETCHER32) return false;
  const std::size_t rank = start.size();
  std::vector<hsize_t> dims(rank), chunk(rank);
  h5::Id space(H5Dget_space(ds), H5Sclose);
  if (H5Sget_simple_extent_ndims(space.get()) != static_cast<int>(rank) ||
      H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0 ||
      H5Pget_chunk(dcpl.get(), static_cast<int>(rank), chunk.data()) != static_cast<int>(rank))
    return false;
  const ChunkGrid grid = ChunkGrid::of(dims, chunk, elem);
  if (grid.dims.empty()) return false;

  // The chunks the box touches: every coordinate of the leading dimensions, the split's pieces in range.
  const std::size_t box = boxes_.size();
  const std::size_t full = static_cast<std::size_t>(grid.chunk_elems()) * elem;
  std::vector<Read> reads;
  for (std::int64_t k = 0; k < grid.count(); ++k) {
    const std::vector<hsize_t> o = grid.offset(k);
    bool hit = true;
    for (std::size_t d = 0; d < rank && hit; ++d)
      hit = o[d] < start[d] + extent[d] && start[d] < o[d] + chunk[d];
    if (!hit) continue;
    Read c{box, k, 0, 0};
    unsigned mask = 0;
    if (H5Dget_chunk_info_by_coord(ds, o.data(), &mask, &c.addr, &c.bytes) < 0 || c.addr == HADDR_UNDEF)
      R1_FAIL(io, where, ": shard ", file, ": chunk ", k, " cannot be located: ", h5::error_text());
    if (mask != 0 || c.bytes != full + kTrailer)
      R1_FAIL(io, where, ": shard ", file, ": chunk ", k, " holds ", c.bytes, " bytes, expected ", full + kTrailer,
              " (the file is damaged)");
    reads.push_back(c);
  }
  boxes_.push_back({grid, start, extent, dst_dims, dst_start, dst, fd_of(file, where), file, where});
  for (const Read& c : reads) planned_bytes_ += c.bytes;
  reads_.insert(reads_.end(), reads.begin(), reads.end());
  return true;
}

void ChunkReader::run() {
  std::sort(reads_.begin(), reads_.end(), [&](const Read& a, const Read& b) {
    const int fa = boxes_[a.box].fd, fb = boxes_[b.box].fd;
    return fa != fb ? fa < fb : a.addr < b.addr;
  });
  io_parallel_for(static_cast<std::int64_t>(reads_.size()), [&](std::int64_t i) {
    const Read& c = reads_[static_cast<std::size_t>(i)];
    const Box& b = boxes_[c.box];
    thread_local std::vector<char> buf;
    buf.resize(c.bytes);
    for (std::size_t got = 0; got < c.bytes;) {
      const ssize_t r = ::pread(b.fd, buf.data() + got, c.bytes - got, static_cast<off_t>(c.addr + got));
      if (r <= 0) R1_FAIL(io, b.where, ": reading shard ", b.file, " failed (chunk ", c.k, ": ",
                          r < 0 ? std::strerror(errno) : "past the end of the file", ")");
      got += static_cast<std::size_t>(r);
    }
    const std::size_t full = c.bytes - kTrailer;
    const auto* bytes = reinterpret_cast<const unsigned char*>(buf.data());
    if (fletcher32(bytes, full) != load_le32(bytes + full))
      R1_FAIL(io, b.where, ": reading shard ", b.file, " failed (Fletcher32 checksum mismatch in chunk ", c.k,
              ": the file is damaged)");
    const std::size_t rank = b.start.size();
    const std::vector<hsize_t> o = b.grid.offset(c.k);
    std::vector<hsize_t> src_lo(rank), dst_lo(rank), ext(rank);
    for (std::size_t d = 0; d < rank; ++d) {
      const hsize_t lo = std::max(o[d], b.start[d]), hi = std::min(o[d] + b.grid.chunk[d], b.start[d] + b.extent[d]);
      src_lo[d] = lo - o[d];
      dst_lo[d] = b.dst_start[d] + (lo - b.start[d]);
      ext[d] = hi > lo ? hi - lo : 0;
    }
    if (std::find(ext.begin(), ext.end(), hsize_t{0}) == ext.end())
      copy_box(buf.data(), b.grid.chunk, src_lo, b.dst, b.dst_dims, dst_lo, ext, b.grid.elem);
  });
  boxes_.clear();
  reads_.clear();
  planned_bytes_ = 0;
}

bool read_box(hid_t ds, const std::string& file, const std::vector<hsize_t>& start, const std::vector<hsize_t>& extent,
              char* dst, const std::vector<hsize_t>& dst_dims, const std::vector<hsize_t>& dst_start, std::size_t elem,
              const std::string& where) {
  ChunkReader reader;
  if (!reader.add(ds, file, start, extent, dst, dst_dims, dst_start, elem, where)) return false;
  reader.run();
  return true;
}

}  // namespace r1::ckpt
