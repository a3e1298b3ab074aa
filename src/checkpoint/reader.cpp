// Reading checkpoints: metadata, the tensor list, and slices of global tensors through index.h5's
// virtual-dataset mapping (docs/checkpoint.md, "Reading"). Every checkpoint is vetted by a checking child
// (verify.hpp) before this process opens its files, so a damaged file cannot crash it.
#include <algorithm>
#include <map>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/chunk_io.hpp"
#include "checkpoint/h5.hpp"
#include "checkpoint/index_file.hpp"
#include "checkpoint/meta_checksums.hpp"
#include "checkpoint/verify.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"

namespace fs = std::filesystem;

namespace r1::ckpt {

namespace index_file {

h5::Id open(const fs::path& index) {
  h5::quiet();
  h5::Id file(H5Fopen(index.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok())
    R1_FAIL(io, "checkpoint index ", index.string(), " cannot be opened (truncated or not an HDF5 file): ", h5::error_text());
  return file;
}

namespace {

std::int64_t scalar_attr(hid_t obj, const char* name, const std::string& what, MetaTexts& texts) {
  const auto v = h5::read_i64_attr(obj, name, what);
  if (v.size() != 1) R1_FAIL(io, what, ": attribute '", name, "' is not a scalar");
  texts.emplace_back(name, int_text(v));
  return v[0];
}

std::string text_attr(hid_t obj, const char* name, const std::string& what, MetaTexts& texts) {
  texts.emplace_back(name, h5::read_string_attr(obj, name, what));
  return texts.back().second;
}

nlohmann::json json_attr(hid_t obj, const char* name, const std::string& what, MetaTexts& texts) {
  const std::string text = text_attr(obj, name, what, texts);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    R1_FAIL(io, what, ": attribute '", name, "' is not JSON");
  }
}

// HDF5's earliest format (superblock version 0 or 1): what checkpoints were written in before meta
// checksums existed.
bool earliest_format(hid_t file) {
  H5F_info2_t info{};
  return H5Fget_info2(file, &info) >= 0 && info.super.version < 2;
}

herr_t visit_dataset(hid_t, const char* name, const H5O_info_t* info, void* out) {
  if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}

std::string virtual_name(ssize_t (*get)(hid_t, size_t, char*, size_t), hid_t dcpl, std::size_t i) {
  const ssize_t n = get(dcpl, i, nullptr, 0);
  std::string s(static_cast<std::size_t>(std::max<ssize_t>(n, 0)) + 1, '\0');
  get(dcpl, i, s.data(), s.size());
  s.resize(static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
  return s;
}

}  // namespace

Meta read_meta(hid_t file, const fs::path& index, const std::string* tensor_map) {
  const std::string what = index.string() + ": meta";
  h5::Id group(H5Gopen2(file, "meta", H5P_DEFAULT), H5Gclose);
  if (!group.ok()) R1_FAIL(io, what, " group is missing: ", h5::error_text());
  Meta m;
  MetaTexts texts;
  m.format_version = scalar_attr(group.get(), "format_version", what, texts);
  R1_REQUIRE(m.format_version == kFormatVersion, what, ": format version ", m.format_version, ", this build reads ",
             kFormatVersion);
  m.stage = text_attr(group.get(), "stage", what, texts);
  m.step = scalar_attr(group.get(), "step", what, texts);
  m.tokens = scalar_attr(group.get(), "tokens", what, texts);
  m.deck = text_attr(group.get(), "deck", what, texts);
  m.parent = text_attr(group.get(), "parent", what, texts);
  m.layout = json_attr(group.get(), "layout", what, texts);
  m.rng_state = json_attr(group.get(), "rng_state", what, texts);
  m.data_state = json_attr(group.get(), "data_state", what, texts);
  m.optimizer_state = json_attr(group.get(), "optimizer_state", what, texts);
  m.writers = h5::read_i64_attr(group.get(), "writers", what);
  texts.emplace_back("writers", int_text(m.writers));
  const htri_t has = H5Aexists(group.get(), "checksums");
  if (has > 0)
    check_meta_checksums(texts, tensor_map, h5::read_string_attr(group.get(), "checksums", what), index);
  else if (has < 0 || !earliest_format(file))
    R1_FAIL(io, what, ": attribute 'checksums' is missing from a file in HDF5's 1.10 format: the file is damaged");
  return m;
}

std::vector<std::string> tensor_names(hid_t file, const fs::path& index) {
  std::vector<std::string> names;
  if (H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_dataset, &names) < 0)
    R1_FAIL(io, index.string(), ": cannot list its datasets: ", h5::error_text());
  std::sort(names.begin(), names.end());
  return names;
}

Shape dataset_shape(hid_t ds) {
  h5::Id space(H5Dget_space(ds), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return Shape(dims.begin(), dims.end());
}

std::vector<Box> boxes(hid_t ds, const std::string& where) {
  h5::Id dcpl(H5Dget_create_plist(ds), H5Pclose);
  if (!dcpl.ok() || H5Pget_layout(dcpl.get()) != H5D_VIRTUAL) R1_FAIL(io, where, ": not a virtual dataset");
  std::size_t count = 0;
  if (H5Pget_virtual_count(dcpl.get(), &count) < 0) R1_FAIL(io, where, ": bad mapping: ", h5::error_text());
  std::vector<Box> out;
  for (std::size_t i = 0; i < count; ++i) {
    h5::Id vspace(H5Pget_virtual_vspace(dcpl.get(), i), H5Sclose);
    const int rank = vspace.ok() ? H5Sget_simple_extent_ndims(vspace.get()) : -1;
    std::vector<hsize_t> lo(static_cast<std::size_t>(std::max(rank, 0))), hi(lo.size());
    if (rank < 0 || H5Sget_select_bounds(vspace.get(), lo.data(), hi.data()) < 0) R1_FAIL(io, where, ": bad mapping");
    Box b{virtual_name(H5Pget_virtual_filename, dcpl.get(), i), virtual_name(H5Pget_virtual_dsetname, dcpl.get(), i), {}, {}};
    for (std::size_t d = 0; d < lo.size(); ++d) {
      b.start.push_back(static_cast<std::int64_t>(lo[d]));
      b.count.push_back(static_cast<std::int64_t>(hi[d] - lo[d] + 1));
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace index_file

namespace {

// index.h5 of a checkpoint, vetted, then opened read-only; every failure names the file.
h5::Id open_index(const fs::path& checkpoint) {
  R1_REQUIRE(fs::is_directory(checkpoint), "checkpoint ", checkpoint.string(), " does not exist");
  const fs::path index = checkpoint / "index.h5";
  if (!fs::exists(index))
    R1_FAIL(io, "checkpoint ", checkpoint.string(), " is incomplete: ", index.string(), " is missing");
  vet(checkpoint);
  return index_file::open(index);
}

// Reads one wanted slice into `host` (its shape and dtype, on the host). The virtual dataset in index.h5
// gives the global shape, dtype and the map of shard boxes; each box that intersects the wanted one is read
// straight from its shard's source dataset: planned into `reader` when the source has chunk_io's layout
// (every shard this build writes; the data arrives at reader.run()), else read now by H5Dread. Reading the
// sources ourselves (rather than H5Dread on the virtual dataset) lets a missing shard be an error (a VDS
// silently fills it with zeros) and names the shard whose checksum failed.
void read_slice(hid_t index, const fs::path& checkpoint, const Slice& want, std::map<std::string, h5::Id>& shards,
                ChunkReader& reader, const Tensor& host) {
  const std::string where = detail::concat("checkpoint ", checkpoint.string(), ": tensor ", want.name);
  const fs::path index_path = checkpoint / "index.h5";
  R1_CHECK(want.data.defined() && want.data.rank() == want.global_shape.rank() &&
               static_cast<int>(want.offset.size()) == want.global_shape.rank(),
           where, ": the wanted slice is malformed");
  if (H5Oexists_by_name(index, want.name.c_str(), H5P_DEFAULT) <= 0) {
    h5::error_text();
    R1_FAIL(user, where, " is not in ", index_path.string());
  }
  h5::Id ds(H5Dopen2(index, want.name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) R1_FAIL(io, where, ": cannot open it in ", index_path.string(), ": ", h5::error_text());
  const Shape global = index_file::dataset_shape(ds.get());
  R1_REQUIRE(global == want.global_shape, where, " has shape ", global.str(), " in ", index_path.string(), ", this run expects ",
             want.global_shape.str());
  const std::string dtype = h5::read_string_attr(ds.get(), "dtype", where + " in " + index_path.string());
  R1_REQUIRE(dtype == dtype_name(want.data.dtype()), where, " is ", dtype, " in ", index_path.string(), ", this run expects ",
             dtype_name(want.data.dtype()));
  const int rank = global.rank();
  for (int d = 0; d < rank; ++d)
    R1_CHECK(want.offset[d] >= 0 && want.offset[d] + want.data.dim(d) <= global[d], where, ": wanted slice outside ", global.str());

  std::vector<hsize_t> mem_dims(static_cast<std::size_t>(rank));
  for (int d = 0; d < rank; ++d) mem_dims[d] = static_cast<hsize_t>(want.data.dim(d));
  std::int64_t filled = 0;
  for (const index_file::Box& box : index_file::boxes(ds.get(), where + " in " + index_path.string())) {
    if (static_cast<int>(box.start.size()) != rank) R1_FAIL(io, where, ": bad mapping in ", index_path.string());
    std::vector<hsize_t> src_start(box.start.size()), mem_start(box.start.size()), extent(box.start.size());
    std::int64_t n = 1;
    for (int d = 0; d < rank; ++d) {
      const auto a = std::max<std::int64_t>(box.start[d], want.offset[d]);
      const auto b = std::min<std::int64_t>(box.start[d] + box.count[d], want.offset[d] + want.data.dim(d));
      n *= std::max<std::int64_t>(0, b - a);
      src_start[d] = static_cast<hsize_t>(a - box.start[d]);
      mem_start[d] = static_cast<hsize_t>(a - want.offset[d]);
      extent[d] = static_cast<hsize_t>(std::max<std::int64_t>(0, b - a));
    }
    if (n == 0) continue;
    const fs::path shard = checkpoint / box.file;
    auto it = shards.find(box.file);
    if (it == shards.end()) {
      if (!fs::exists(shard)) R1_FAIL(io, where, ": its shard ", shard.string(), " is missing");
      h5::Id f(H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
      if (!f.ok()) R1_FAIL(io, where, ": shard ", shard.string(), " cannot be opened (truncated or not HDF5): ", h5::error_text());
      it = shards.emplace(box.file, std::move(f)).first;
    }
    h5::Id src(H5Dopen2(it->second.get(), box.dataset.c_str(), H5P_DEFAULT), H5Dclose);
    if (!src.ok()) R1_FAIL(io, where, ": shard ", shard.string(), " has no dataset ", box.dataset, ": ", h5::error_text());
    if (reader.add(src.get(), shard.string(), src_start, extent, static_cast<char*>(host.raw()), mem_dims, mem_start,
                   dtype_size(want.data.dtype()), where)) {
      filled += n;
      continue;
    }
    h5::Id fspace(H5Dget_space(src.get()), H5Sclose);
    h5::Id mspace(H5Screate_simple(rank, mem_dims.data(), nullptr), H5Sclose);
    if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, src_start.data(), nullptr, extent.data(), nullptr) < 0 ||
        H5Sselect_hyperslab(mspace.get(), H5S_SELECT_SET, mem_start.data(), nullptr, extent.data(), nullptr) < 0)
      R1_FAIL(io, where, ": shard ", shard.string(), " does not match the mapping in ", index_path.string(), ": ", h5::error_text());
    if (H5Dread(src.get(), h5::mem_type(want.data.dtype()), mspace.get(), fspace.get(), H5P_DEFAULT, host.raw()) < 0)
      R1_FAIL(io, where, ": reading shard ", shard.string(), " failed (Fletcher32 checksum mismatch or I/O error): ",
              h5::error_text());
    filled += n;
  }
  if (filled != want.data.numel())
    R1_FAIL(io, where, ": index.h5 maps only ", filled, " of the ", want.data.numel(), " wanted elements to shards");
}

}  // namespace

std::optional<fs::path> latest(const fs::path& dir) {
  const fs::path marker = dir / "latest";
  if (!fs::exists(marker)) return std::nullopt;
  std::string name = read_file(marker.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos)
    R1_FAIL(io, marker.string(), " is malformed: it must hold one step directory name, holds '", name, "'");
  const fs::path step = dir / name;
  if (!fs::is_directory(step))
    R1_FAIL(io, marker.string(), " names ", name, ", but ", step.string(), " does not exist (deleted or moved?)");
  return step;
}

Meta read_meta(const fs::path& checkpoint) {
  const h5::Id file = open_index(checkpoint);
  return index_file::read_meta(file.get(), checkpoint / "index.h5", nullptr);
}

std::vector<TensorInfo> list_tensors(const fs::path& checkpoint) {
  const h5::Id file = open_index(checkpoint);
  std::vector<TensorInfo> out;
  for (const auto& name : index_file::tensor_names(file.get(), checkpoint / "index.h5")) {
    h5::Id ds(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    const std::string what = detail::concat((checkpoint / "index.h5").string(), ": tensor ", name);
    if (!ds.ok()) R1_FAIL(io, what, ": cannot open: ", h5::error_text());
    out.push_back({name, index_file::dataset_shape(ds.get()), h5::parse_dtype(h5::read_string_attr(ds.get(), "dtype", what))});
  }
  return out;
}

// The chunks of many slices are read together (ChunkReader), in waves: a slice held on the device is
// staged in host memory and copied up after its wave, and a wave ends once ~1 GiB is staged, so the host
// memory a load takes stays bounded whatever the state's size.
void load(const fs::path& checkpoint, const std::vector<Slice>& wanted) {
  constexpr std::size_t kWaveStagedBytes = std::size_t{1} << 30;
  read_meta(checkpoint);  // refuses another format version before any tensor is read
  const h5::Id file = open_index(checkpoint);
  std::map<std::string, h5::Id> shards;
  ChunkReader reader;
  std::vector<std::pair<const Slice*, Tensor>> staged;
  std::size_t staged_bytes = 0;
  const auto finish_wave = [&] {
    reader.run();
    for (const auto& [w, host] : staged) copy(w->data, host);
    staged.clear();
    staged_bytes = 0;
  };
  for (const Slice& w : wanted) {
    if (w.data.on_host()) {
      read_slice(file.get(), checkpoint, w, shards, reader, w.data);
      continue;
    }
    staged.emplace_back(&w, Tensor::host(w.data.shape(), w.data.dtype()));
    read_slice(file.get(), checkpoint, w, shards, reader, staged.back().second);
    staged_bytes += staged.back().second.nbytes();
    if (staged_bytes >= kWaveStagedBytes) finish_wave();
  }
  finish_wave();
}

}  // namespace r1::ckpt
