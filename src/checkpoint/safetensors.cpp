#include "checkpoint/safetensors.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace r1::st {

namespace fs = std::filesystem;

namespace {

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  std::size_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {Dtype::f64, "F64", 8},   {Dtype::f32, "F32", 4},         {Dtype::f16, "F16", 2},         {Dtype::bf16, "BF16", 2},
    {Dtype::f8_e4m3, "F8_E4M3", 1}, {Dtype::f8_e5m2, "F8_E5M2", 1}, {Dtype::i64, "I64", 8}, {Dtype::i32, "I32", 4},
    {Dtype::i16, "I16", 2},   {Dtype::i8, "I8", 1},           {Dtype::u64, "U64", 8},         {Dtype::u32, "U32", 4},
    {Dtype::u16, "U16", 2},   {Dtype::u8, "U8", 1},           {Dtype::boolean, "BOOL", 1},
};

// Headers above this are refused before allocating (the reference implementation's limit).
constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr char kIndexName[] = "model.safetensors.index.json";

const DtypeInfo& info(Dtype t) {
  for (const DtypeInfo& i : kDtypes)
    if (i.dtype == t) return i;
  R1_FAIL(internal, "safetensors: unknown dtype enum ", static_cast<int>(t));
}

// IEEE half -> float (F16 tensors of a checkpoint; r1hpc computes in f32/bf16).
float half_to_float(std::uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 1024), exp - 25);
  return sign ? -v : v;
}

std::uint64_t read_u64_le(const unsigned char* b) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

std::string json_dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict); }

}  // namespace

std::string_view dtype_name(Dtype t) { return info(t).name; }
std::size_t dtype_bytes(Dtype t) { return info(t).bytes; }

Dtype from_dtype(DType t) {
  switch (t) {
    case DType::f32: return Dtype::f32;
    case DType::bf16: return Dtype::bf16;
    case DType::f8e4m3: return Dtype::f8_e4m3;
    case DType::i32: return Dtype::i32;
    case DType::i64: return Dtype::i64;
    case DType::u8: return Dtype::u8;
    case DType::f64: return Dtype::f64;
  }
  R1_FAIL(internal, "safetensors: no type for ", dtype_name(t));
}

std::int64_t Entry::numel() const {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) n *= d;
  return n;
}

File::File(fs::path path) : path_(std::move(path)) {
  const std::string where = path_.string();
  std::error_code ec;
  const std::uint64_t size = fs::file_size(path_, ec);
  if (ec) R1_FAIL(user, where, ": cannot read safetensors file: ", ec.message());
  std::ifstream in(path_, std::ios::binary);
  if (!in) R1_FAIL(user, where, ": cannot open safetensors file");
  if (size < 8) R1_FAIL(user, where, ": ", size, " bytes, too short for the 8-byte header length of a safetensors file");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  const std::uint64_t header_len = read_u64_le(len_bytes);
  if (header_len > size - 8 || header_len > kMaxHeaderBytes)
    R1_FAIL(user, where, ": safetensors header length ", header_len, " exceeds the ", size - 8,
            " bytes after the length field (not a safetensors file, or truncated)");
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) R1_FAIL(user, where, ": cannot read the safetensors header");
  data_start_ = 8 + header_len;
  const std::uint64_t data_bytes = size - data_start_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    R1_FAIL(user, where, ": safetensors header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) R1_FAIL(user, where, ": safetensors header is not a JSON object");

  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) R1_FAIL(user, where, ": __metadata__ is not a JSON object");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) R1_FAIL(user, where, ": __metadata__ value of ", k, " is not a string");
        metadata_.emplace(k, s.get<std::string>());
      }
      continue;
    }
    const auto bad = [&](const auto&... why) { R1_FAIL(user, where, ": tensor ", name, ": ", why...); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad("expected an object with dtype, shape and data_offsets, got ", json_dump(v));
    Entry e;
    e.name = name;
    e.file = path_;
    const auto& dt = v.at("dtype");
    const DtypeInfo* di = nullptr;
    if (dt.is_string())
      for (const DtypeInfo& i : kDtypes)
        if (i.name == dt.get<std::string>()) di = &i;
    if (di == nullptr) bad("unknown dtype ", json_dump(dt));
    e.dtype = di->dtype;
    const auto& shape = v.at("shape");
    if (!shape.is_array() || shape.size() > static_cast<std::size_t>(Shape::kMaxRank)) bad("bad shape ", json_dump(shape));
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) bad("bad shape ", json_dump(shape));
      e.shape.push_back(d.get<std::int64_t>());
    }
    const auto& off = v.at("data_offsets");
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned() ||
        off[1].get<std::uint64_t>() < off[0].get<std::uint64_t>())
      bad("data_offsets ", json_dump(off), " are not [begin, end] with begin <= end");
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    const std::uint64_t want = static_cast<std::uint64_t>(e.numel()) * di->bytes;
    if (e.end - e.begin != want)
      bad("shape ", json_dump(shape), " of ", di->name, " needs ", want, " bytes, but data_offsets ", json_dump(off),
          " span ", e.end - e.begin);
    if (e.end > data_bytes)
      bad("data_offsets ", json_dump(off), " reach past the ", data_bytes, " bytes of data in the file (truncated?)");
    entries_.emplace(name, std::move(e));
  }

  // The tensors must tile the data section: sorted by offset, each starts where the previous ended.
  std::vector<const Entry*> by_offset;
  for (const auto& [n, e] : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin < pos)
      R1_FAIL(user, where, ": tensor ", e->name, ": data_offsets [", e->begin, ", ", e->end, "] overlap tensor ", prev->name,
              " [", prev->begin, ", ", prev->end, "]");
    if (e->begin > pos)
      R1_FAIL(user, where, ": tensor ", e->name, ": data_offsets start at ", e->begin, ", leaving bytes ", pos, "-", e->begin,
              " unused", prev ? " after tensor " + prev->name : std::string());
    pos = e->end;
    prev = e;
  }
  if (pos != data_bytes)
    R1_FAIL(user, where, ": ", data_bytes - pos, " bytes after the last tensor", prev ? " (" + prev->name + ")" : std::string(),
            ": the data section is ", data_bytes, " bytes, the header describes ", pos);
}

const Entry& File::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) R1_FAIL(user, path_.string(), ": no tensor ", name);
  return it->second;
}

Tensor File::read(const std::string& name) const {
  const Entry& e = entry(name);
  const Shape shape(e.shape.begin(), e.shape.end());
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  const auto read_into = [&](void* dst) {
    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) R1_FAIL(user, path_.string(), ": tensor ", name, ": read failed");
  };
  DType dt;
  switch (e.dtype) {
    case Dtype::f64: dt = DType::f64; break;
    case Dtype::f32: dt = DType::f32; break;
    case Dtype::bf16: dt = DType::bf16; break;
    case Dtype::f8_e4m3: dt = DType::f8e4m3; break;
    case Dtype::i64: dt = DType::i64; break;
    case Dtype::i32: dt = DType::i32; break;
    case Dtype::u8: dt = DType::u8; break;
    case Dtype::f16: {
      std::vector<std::uint16_t> raw(static_cast<std::size_t>(e.numel()));
      read_into(raw.data());
      Tensor t = Tensor::host(shape, DType::f32);
      std::transform(raw.begin(), raw.end(), t.data<float>(), half_to_float);
      return t;
    }
    default: R1_FAIL(user, path_.string(), ": tensor ", name, ": r1hpc cannot read dtype ", dtype_name(e.dtype));
  }
  Tensor t = Tensor::host(shape, dt);
  read_into(t.raw());
  return t;
}

Reader::Reader(const fs::path& path) {
  fs::path index, single;
  if (fs::is_directory(path)) {
    if (fs::exists(path / kIndexName)) index = path / kIndexName;
    else if (fs::exists(path / "model.safetensors")) single = path / "model.safetensors";
    else R1_FAIL(user, path.string(), ": neither ", kIndexName, " nor model.safetensors is there");
  } else if (path.filename().string().ends_with(".json")) {
    index = path;
  } else {
    single = path;
  }
  if (!single.empty()) {
    files_.emplace_back(single);
    for (const auto& [n, e] : files_.back().entries()) where_.emplace(n, 0);
    return;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(index.string()));
  } catch (const nlohmann::json::exception& e) {
    R1_FAIL(user, index.string(), ": not valid JSON: ", e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j.at("weight_map").is_object())
    R1_FAIL(user, index.string(), ": no weight_map object");
  std::map<std::string, std::size_t> file_index;
  for (const auto& [name, f] : j.at("weight_map").items()) {
    if (!f.is_string()) R1_FAIL(user, index.string(), ": weight_map entry of tensor ", name, " is not a file name");
    const std::string shard = f.get<std::string>();
    if (shard.find('/') != std::string::npos) R1_FAIL(user, index.string(), ": tensor ", name, ": shard ", shard, " is not in this directory");
    auto it = file_index.find(shard);
    if (it == file_index.end()) {
      files_.emplace_back(index.parent_path() / shard);
      it = file_index.emplace(shard, files_.size() - 1).first;
    }
    if (!files_[it->second].entries().count(name))
      R1_FAIL(user, index.string(), ": tensor ", name, " is mapped to ", shard, ", which does not hold it");
    where_.emplace(name, it->second);
  }
  for (std::size_t i = 0; i < files_.size(); ++i)
    for (const auto& [n, e] : files_[i].entries()) {
      const auto w = where_.find(n);
      if (w == where_.end())
        R1_FAIL(user, files_[i].path().string(), ": tensor ", n, " is missing from the weight_map of ", index.string());
      if (w->second != i)
        R1_FAIL(user, files_[i].path().string(), ": tensor ", n, " is also in ", files_[w->second].path().string());
    }
}

std::vector<std::string> Reader::names() const {
  std::vector<std::string> out;
  for (const auto& [n, i] : where_) out.push_back(n);
  return out;
}

const Entry& Reader::entry(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) R1_FAIL(user, "safetensors checkpoint ", files_.front().path().parent_path().string(), ": no tensor ", name);
  return files_[it->second].entry(name);
}

Tensor Reader::read(const std::string& name) const { return files_[where_.at(entry(name).name)].read(name); }

Tensor Reader::read_f32(const std::string& name) const {
  Tensor t = read(name);
  if (t.dtype() == DType::f32) return t;
  Tensor out = Tensor::host(t.shape(), DType::f32);
  float* dst = out.data<float>();
  if (t.dtype() == DType::bf16) {
    std::transform(t.data<bf16>(), t.data<bf16>() + t.numel(), dst, [](bf16 h) { return to_float(h); });
  } else if (t.dtype() == DType::f64) {
    std::transform(t.data<double>(), t.data<double>() + t.numel(), dst, [](double v) { return static_cast<float>(v); });
  } else {
    R1_FAIL(user, entry(name).file.string(), ": tensor ", name, ": expected a floating-point tensor (F32, BF16, F16, F64), got ",
            dtype_name(entry(name).dtype));
  }
  return out;
}

void write_file(const fs::path& file, const std::map<std::string, Tensor>& tensors,
                const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t pos = 0;
  for (const auto& [name, t] : tensors) {
    R1_CHECK(t.on_host(), "safetensors: tensor ", name, " must be on the host, is ", t.str());
    std::vector<std::int64_t> shape;
    for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
    header[name] = {{"dtype", dtype_name(from_dtype(t.dtype()))}, {"shape", shape}, {"data_offsets", {pos, pos + t.nbytes()}}};
    pos += t.nbytes();
  }
  std::string text = json_dump(header);
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned, as the reference writer does
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  bytes += text;
  bytes.reserve(bytes.size() + pos);
  for (const auto& [name, t] : tensors) bytes.append(static_cast<const char*>(t.raw()), t.nbytes());
  write_file_atomic(file.string(), bytes);
}

std::vector<fs::path> write_checkpoint(const fs::path& dir, const std::map<std::string, Tensor>& tensors,
                                       const WriteOptions& options) {
  fs::create_directories(dir);
  std::vector<std::map<std::string, Tensor>> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    if (options.max_shard_bytes > 0 && in_shard > 0 && in_shard + t.nbytes() > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().emplace(name, t);
    in_shard += t.nbytes();
    total += t.nbytes();
  }
  std::vector<fs::path> files;
  if (shards.size() == 1) {
    files.push_back(dir / "model.safetensors");
    write_file(files.back(), tensors, options.metadata);
    return files;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    files.push_back(dir / name);
    write_file(files.back(), shards[i], options.metadata);
    for (const auto& [n, t] : shards[i]) weight_map[n] = name;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  files.push_back(dir / kIndexName);
  write_file_atomic(files.back().string(), index.dump(2) + "\n");
  return files;
}

}  // namespace r1::st
