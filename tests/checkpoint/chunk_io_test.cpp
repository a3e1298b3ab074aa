// chunk_io: our Fletcher32 equals the one HDF5's filter stores; chunks written by write_chunks read back
// through HDF5's own H5Dread (which checks every checksum) for every chunk shape the planner makes; read_box
// equals H5Dread on boxes of them, refuses layouts it does not know, and names a damaged chunk.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "checkpoint/chunk_io.hpp"
#include "core/error.hpp"

namespace fs = std::filesystem;
using namespace r1;
using namespace r1::ckpt;

namespace {

fs::path fresh(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("r1hpc_chunk_io_" + name + "_" + std::to_string(::getpid()) + ".h5");
  fs::remove(p);
  return p;
}

std::vector<char> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<char> v(n);
  for (char& c : v) c = static_cast<char>(rng());
  return v;
}

hid_t byte_type(std::size_t elem) {
  switch (elem) {
    case 1: return H5T_STD_U8LE;
    case 2: return H5T_STD_U16LE;
    case 4: return H5T_STD_U32LE;
    default: return H5T_STD_U64LE;
  }
}

// Creates dataset "d" of `dims` with the given chunk (none: contiguous) and Fletcher32 when asked.
hid_t create(hid_t file, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk, std::size_t elem,
             bool fletcher) {
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (!chunk.empty()) H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  if (fletcher) H5Pset_fletcher32(dcpl);
  const hid_t ds = H5Dcreate2(file, "d", byte_type(elem), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

std::size_t numel(const std::vector<hsize_t>& dims) {
  std::size_t n = 1;
  for (hsize_t d : dims) n *= d;
  return n;
}

}  // namespace

TEST(Fletcher32, EqualsTheChecksumHdf5StoresForEvenAndOddLengths) {
  for (const std::size_t bytes : {1u, 2u, 3u, 719u, 720u, 721u, 4096u, 100001u}) {
    const fs::path path = fresh("sum");
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const std::vector<hsize_t> dims{bytes};
    const hid_t ds = create(file, dims, dims, 1, true);
    const std::vector<char> data = random_bytes(bytes, static_cast<unsigned>(bytes));
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), 0);
    std::vector<unsigned char> raw(bytes + 4);
    const hsize_t origin[1] = {0};
    std::uint32_t filters = 0;
    ASSERT_GE(H5Dread_chunk(ds, H5P_DEFAULT, origin, &filters, raw.data()), 0);
    const std::uint32_t stored = raw[bytes] | raw[bytes + 1] << 8 | raw[bytes + 2] << 16 | static_cast<std::uint32_t>(raw[bytes + 3]) << 24;
    EXPECT_EQ(fletcher32(data.data(), bytes), stored) << bytes << " bytes";
    H5Dclose(ds);
    H5Fclose(file);
    fs::remove(path);
  }
}

TEST(ChunkGrid, EveryChunkIsOneContiguousRunAndTheyTileTheDataset) {
  for (const auto& [dims, elem] : std::vector<std::pair<std::vector<hsize_t>, std::size_t>>{
           {{5}, 4}, {{3000000}, 4}, {{3000, 1000}, 4}, {{7, 3000, 700}, 2}, {{2, 3, 1500000}, 1}, {{64, 64}, 8}}) {
    const ChunkGrid g = ChunkGrid::plan(dims, elem);
    ASSERT_LE(static_cast<std::size_t>(g.chunk_elems()) * elem, 4u << 20);
    const ChunkGrid again = ChunkGrid::of(dims, g.chunk, elem);
    EXPECT_EQ(again.split, g.split);
    EXPECT_EQ(again.trail, g.trail);
    std::int64_t next = 0;
    for (std::int64_t k = 0; k < g.count(); ++k) {
      EXPECT_EQ(g.first(k), next) << "chunk " << k;
      next += g.valid(k);
    }
    EXPECT_EQ(static_cast<std::size_t>(next), numel(dims));
  }
  EXPECT_TRUE(ChunkGrid::of({100, 50}, {10, 10}, 4).dims.empty());  // cut in two dimensions: not a run
}

TEST(ChunkIo, WrittenChunksReadBackThroughHdf5AndReadBoxEqualsH5Dread) {
  std::mt19937 rng(7);
  for (const auto& [dims, elem] : std::vector<std::pair<std::vector<hsize_t>, std::size_t>>{
           {{5}, 4}, {{1100000}, 4}, {{3000, 1000}, 4}, {{3, 1500, 700}, 2}, {{2, 3, 1500000}, 1}}) {
    const fs::path path = fresh("rw");
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const ChunkGrid g = ChunkGrid::plan(dims, elem);
    const hid_t ds = create(file, dims, g.chunk, elem, true);
    const std::vector<char> data = random_bytes(numel(dims) * elem, static_cast<unsigned>(dims[0]));
    write_chunks(ds, g, data.data(), "test dataset");
    H5Dclose(ds);
    H5Fclose(file);

    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "d", H5P_DEFAULT);
    std::vector<char> back(data.size());
    ASSERT_GE(H5Dread(d, byte_type(elem), H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), 0) << "HDF5 refused a chunk";
    EXPECT_EQ(back, data);
    for (int trial = 0; trial < 6; ++trial) {
      // A random box, read into the middle of a larger destination at a random place.
      std::vector<hsize_t> start(dims.size()), extent(dims.size()), dst_dims(dims.size()), dst_start(dims.size());
      for (std::size_t k = 0; k < dims.size(); ++k) {
        start[k] = rng() % dims[k];
        extent[k] = 1 + rng() % (dims[k] - start[k]);
        dst_start[k] = rng() % 3;
        dst_dims[k] = extent[k] + dst_start[k] + 1;
      }
      std::vector<char> got(numel(dst_dims) * elem, 0), want(got.size(), 0);
      ASSERT_TRUE(read_box(d, path.string(), start, extent, got.data(), dst_dims, dst_start, elem, "test dataset"));
      const hid_t fspace = H5Dget_space(d);
      const hid_t mspace = H5Screate_simple(static_cast<int>(dims.size()), dst_dims.data(), nullptr);
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr);
      H5Sselect_hyperslab(mspace, H5S_SELECT_SET, dst_start.data(), nullptr, extent.data(), nullptr);
      ASSERT_GE(H5Dread(d, byte_type(elem), mspace, fspace, H5P_DEFAULT, want.data()), 0);
      H5Sclose(mspace);
      H5Sclose(fspace);
      EXPECT_EQ(got, want) << "box " << trial << " of a dataset of rank " << dims.size();
    }
    H5Dclose(d);
    H5Fclose(f);
    fs::remove(path);
  }
}

TEST(ChunkIo, ReadBoxLeavesOtherLayoutsToHdf5) {
  const fs::path path = fresh("other");
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<char> buf(400);
  const std::vector<hsize_t> dims{10, 10}, start{0, 0}, dst_start{0, 0};
  for (const auto& [chunk, fletcher] : std::vector<std::pair<std::vector<hsize_t>, bool>>{
           {{}, false}, {{5, 10}, false}, {{5, 5}, true}}) {
    const hid_t ds = create(file, dims, chunk, 4, fletcher);
    H5Dwrite(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
    EXPECT_FALSE(read_box(ds, path.string(), start, dims, buf.data(), dims, dst_start, 4, "x"));
    H5Dclose(ds);
    H5Ldelete(file, "d", H5P_DEFAULT);
  }
  H5Fclose(file);
  fs::remove(path);
}

TEST(ChunkIo, ADamagedChunkIsNamedWithItsShard) {
  const fs::path path = fresh("flip");
  const std::vector<hsize_t> dims{3000, 1000};
  const ChunkGrid g = ChunkGrid::plan(dims, 4);
  haddr_t addr = 0;
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t ds = create(file, dims, g.chunk, 4, true);
    const std::vector<char> data = random_bytes(numel(dims) * 4, 3);
    write_chunks(ds, g, data.data(), "test dataset");
    unsigned mask = 0;
    hsize_t size = 0;
    const std::vector<hsize_t> second = g.offset(1);
    ASSERT_GE(H5Dget_chunk_info_by_coord(ds, second.data(), &mask, &addr, &size), 0);
    H5Dclose(ds);
    H5Fclose(file);
  }
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    char byte = 0;
    io.seekg(static_cast<std::streamoff>(addr + 1000));
    io.read(&byte, 1);
    io.seekp(static_cast<std::streamoff>(addr + 1000));
    io.put(static_cast<char>(byte ^ 0x5a));
  }
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "d", H5P_DEFAULT);
  std::vector<char> back(numel(dims) * 4);
  std::string message;
  try {
    read_box(d, path.string(), {0, 0}, dims, back.data(), dims, {0, 0}, 4, "tensor model/w");
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("tensor model/w: reading shard " + path.string() + " failed (Fletcher32 checksum mismatch in chunk 1"),
            std::string::npos)
      << message;
  H5Dclose(d);
  H5Fclose(f);
  fs::remove(path);
}
