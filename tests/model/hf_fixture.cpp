#include "model/hf_fixture.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/error.hpp"
#include "deck/deck.hpp"

namespace r1::test {

namespace {

// One HDF5 handle, closed by its own close function.
class H5Handle {
 public:
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Handle() {
    if (id_ >= 0) close_(id_);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

class H5Reader {
 public:
  explicit H5Reader(std::filesystem::path file) : path_(std::move(file)) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions naming the object, not stack dumps
    R1_REQUIRE(std::filesystem::exists(path_), "HF fixture ", path_.string(),
               " does not exist (regenerate with: python3 tools/hf_fixtures.py --out tests/fixtures)");
    file_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file_ < 0) R1_FAIL(io, path_.string(), ": not an HDF5 file or unreadable");
  }
  ~H5Reader() {
    if (file_ >= 0) H5Fclose(file_);
  }
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  // A string attribute of the root group (variable-length, as h5py writes str, or fixed-length).
  std::string string_attr(const char* name) const {
    H5Handle attr(H5Aopen(file_, name, H5P_DEFAULT), H5Aclose);
    if (!attr.ok()) fail("attribute ", name, ": missing");
    H5Handle type(H5Aget_type(attr.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING) fail("attribute ", name, ": not a string");
    if (H5Tis_variable_str(type.get()) > 0) {
      H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.get(), H5T_VARIABLE);
      H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
      char* value = nullptr;
      if (H5Aread(attr.get(), mem.get(), &value) < 0 || value == nullptr) fail("attribute ", name, ": unreadable");
      std::string s(value);
      H5free_memory(value);
      return s;
    }
    const std::size_t n = H5Tget_size(type.get());
    std::string s(n, '\0');
    if (H5Aread(attr.get(), type.get(), s.data()) < 0) fail("attribute ", name, ": unreadable");
    s.resize(std::strlen(s.c_str()));
    return s;
  }

  Shape shape(const std::string& path) const {
    H5Handle ds(open(path), H5Dclose);
    H5Handle space(H5Dget_space(ds.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0 || rank > Shape::kMaxRank) fail(path, ": unsupported rank ", rank);
    hsize_t dims[Shape::kMaxRank] = {};
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    return Shape(dims, dims + rank);
  }

  Tensor f32(const std::string& path) const {
    Tensor t = Tensor::host(shape(path), DType::f32);
    read(path, H5T_NATIVE_FLOAT, t.data<float>());
    return t;
  }
  std::vector<std::int32_t> i32(const std::string& path, Shape* shape_out) const {
    *shape_out = shape(path);
    std::vector<std::int32_t> v(static_cast<std::size_t>(shape_out->numel()));
    read(path, H5T_NATIVE_INT32, v.data());
    return v;
  }
  double f64_scalar(const std::string& path) const {
    if (shape(path).numel() != 1) fail(path, ": expected a scalar");
    double v = 0;
    read(path, H5T_NATIVE_DOUBLE, &v);
    return v;
  }

  // The names of the datasets directly in a group, in name order.
  std::vector<std::string> members(const char* group) const {
    H5Handle g(H5Gopen2(file_, group, H5P_DEFAULT), H5Gclose);
    if (!g.ok()) fail("group ", group, ": missing");
    std::vector<std::string> names;
    const auto collect = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
      static_cast<std::vector<std::string>*>(out)->emplace_back(name);
      return 0;
    };
    if (H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names) < 0) fail("group ", group, ": unreadable");
    return names;
  }

 private:
  hid_t open(const std::string& path) const {
    const hid_t ds = H5Dopen2(file_, path.c_str(), H5P_DEFAULT);
    if (ds < 0) fail("dataset ", path, ": missing");
    return ds;
  }
  void read(const std::string& path, hid_t mem_type, void* out) const {
    H5Handle ds(open(path), H5Dclose);
    if (H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) fail("dataset ", path, ": unreadable");
  }
  template <class... Args>
  [[noreturn]] void fail(Args&&... parts) const {
    R1_FAIL(io, path_.string(), ": ", std::forward<Args>(parts)...);
  }

  std::filesystem::path path_;
  hid_t file_ = -1;
};

}  // namespace

std::filesystem::path hf_fixture_dir() { return std::filesystem::path(R1HPC_HF_FIXTURE_DIR); }

std::filesystem::path hf_fixture_path(const std::string& name) { return hf_fixture_dir() / (name + ".h5"); }

std::vector<std::string> hf_fixture_names() {
  return {"moe_sigmoid_groups", "moe_qlora_yarn", "v2_softmax", "dense_first_layers"};
}

HfFixture load_hf_fixture(const std::filesystem::path& file) {
  const H5Reader h5(file);
  HfFixture fx;
  fx.name = file.stem().string();
  fx.arch = h5.string_attr("arch");
  fx.config_json = h5.string_attr("config");
  fx.deck_text = h5.string_attr("r1hpc_deck");
  fx.torch_version = h5.string_attr("torch_version");
  fx.transformers_version = h5.string_attr("transformers_version");

  Shape ids_shape, labels_shape;
  fx.input_ids = h5.i32("input_ids", &ids_shape);
  fx.labels = h5.i32("labels", &labels_shape);
  fx.logits = h5.f32("logits");
  fx.loss = h5.f64_scalar("loss");
  R1_REQUIRE(ids_shape.rank() == 2 && labels_shape == ids_shape, file.string(), ": input_ids ", ids_shape.str(),
             " and labels ", labels_shape.str(), " must both be [B, S]");
  fx.batch = ids_shape[0];
  fx.seq = ids_shape[1];
  R1_REQUIRE(fx.logits.rank() == 3 && fx.logits.dim(0) == fx.batch && fx.logits.dim(1) == fx.seq, file.string(),
             ": logits ", fx.logits.shape().str(), " do not match input_ids ", ids_shape.str());
  fx.vocab = fx.logits.dim(2);

  for (const std::string& n : h5.members("weights")) fx.weights.emplace(n, h5.f32("weights/" + n));
  for (const std::string& n : h5.members("grads")) fx.grads.emplace(n, h5.f32("grads/" + n));
  return fx;
}

ModelConfig model_config(const HfFixture& fx) {
  return Deck::parse(fx.deck_text, fx.name + ".h5:r1hpc_deck").config().model;
}

TokenBatch token_batch(const HfFixture& fx) {
  TokenBatch tb;
  tb.batch = fx.batch;
  tb.seq = fx.seq;
  tb.ids = fx.input_ids;
  tb.targets.assign(fx.input_ids.size(), -1);
  for (std::int64_t b = 0; b < fx.batch; ++b)
    for (std::int64_t s = 0; s + 1 < fx.seq; ++s) {
      const std::int32_t label = fx.labels[static_cast<std::size_t>(b * fx.seq + s + 1)];
      if (label != -100) tb.targets[static_cast<std::size_t>(b * fx.seq + s)] = label;
    }
  return tb;
}

double reference_loss(const HfFixture& fx) {
  const TokenBatch tb = token_batch(fx);
  const float* logits = fx.logits.data<float>();
  double sum = 0;
  std::int64_t counted = 0;
  for (std::int64_t t = 0; t < fx.batch * fx.seq; ++t) {
    const std::int32_t target = tb.targets[static_cast<std::size_t>(t)];
    if (target < 0) continue;
    R1_REQUIRE(target < fx.vocab, fx.name, ": label ", target, " at token ", t, " is outside the vocabulary of ",
               fx.vocab);
    const float* row = logits + t * fx.vocab;
    double m = row[0];
    for (std::int64_t v = 1; v < fx.vocab; ++v) m = std::max(m, static_cast<double>(row[v]));
    double z = 0;
    for (std::int64_t v = 0; v < fx.vocab; ++v) z += std::exp(static_cast<double>(row[v]) - m);
    sum += m + std::log(z) - static_cast<double>(row[target]);
    ++counted;
  }
  R1_REQUIRE(counted > 0, fx.name, ": no label carries a loss");
  return sum / static_cast<double>(counted);
}

std::map<std::string, Tensor> mapped_weights(const HfFixture& fx) { return map_hf_tensors(fx.weights); }
std::map<std::string, Tensor> mapped_grads(const HfFixture& fx) { return map_hf_tensors(fx.grads); }

void load_into(const HfFixture& fx, ParamStore& params) { hf::load_hf_tensors(fx.weights, params, fx.name); }

TensorDiff diff(const Tensor& got, const Tensor& want) {
  R1_REQUIRE(got.numel() == want.numel(), "diff: ", got.str(), " vs ", want.str());
  Tensor g = got, w = want;
  if (!g.on_host()) {
    g = Tensor::host(got.shape(), got.dtype());
    copy(g, got);
  }
  if (!w.on_host()) {
    w = Tensor::host(want.shape(), want.dtype());
    copy(w, want);
  }
  const float* a = g.data<float>();
  const float* b = w.data<float>();
  TensorDiff d;
  double scale = 0;
  for (std::int64_t i = 0; i < g.numel(); ++i) {
    d.max_abs = std::max(d.max_abs, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  d.max_rel = scale > 0 ? d.max_abs / scale : d.max_abs;
  return d;
}

}  // namespace r1::test
