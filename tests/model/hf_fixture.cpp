#include "model/hf_fixture.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
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

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Digits at s[pos...] up to the next '.', as an index; npos-like -1 when s has none there.
long leading_index(const std::string& s, std::size_t pos, std::size_t* end) {
  std::size_t e = pos;
  while (e < s.size() && s[e] >= '0' && s[e] <= '9') ++e;
  if (e == pos || e >= s.size() || s[e] != '.') return -1;
  *end = e + 1;
  return std::stol(s.substr(pos, e - pos));
}

// A mapped r1hpc tensor and the HF tensors it was made from (for error messages).
struct Assembled {
  Tensor tensor;
  std::vector<std::string> sources;
};

std::map<std::string, Assembled> assemble(const std::map<std::string, Tensor>& hf) {
  struct Piece {
    const std::string* hf_name;
    const Tensor* tensor;
    HfTarget target;
  };
  std::map<std::string, std::vector<Piece>> by_target;
  for (const auto& [name, t] : hf) {
    HfTarget target = hf_target(name);
    R1_REQUIRE(t.dtype() == DType::f32 && t.on_host(), "HF tensor ", name, ": expected a host f32 tensor, got ", t.str());
    by_target[target.name].push_back(Piece{&name, &t, std::move(target)});
  }

  std::map<std::string, Assembled> out;
  for (const auto& [r1_name, pieces] : by_target) {
    const bool stacked = pieces.front().target.expert >= 0;
    int n_slots = 1;
    for (const Piece& p : pieces) {
      R1_REQUIRE((p.target.expert >= 0) == stacked, "HF tensors ", *pieces.front().hf_name, " and ", *p.hf_name,
                 " both map to ", r1_name, ", one per expert and one stacked");
      n_slots = std::max(n_slots, p.target.expert + 1);
    }
    // slot -> part (-1 whole, 0 gate, 1 up) -> piece
    std::vector<std::map<int, const Piece*>> slots(static_cast<std::size_t>(n_slots));
    for (const Piece& p : pieces) {
      auto& slot = slots[static_cast<std::size_t>(std::max(p.target.expert, 0))];
      const auto [it, fresh] = slot.emplace(p.target.part, &p);
      R1_REQUIRE(fresh, "HF tensors ", *it->second->hf_name, " and ", *p.hf_name, " map to the same part of ", r1_name);
    }
    Shape slot_shape;
    for (std::size_t e = 0; e < slots.size(); ++e) {
      const auto& slot = slots[e];
      const std::string where = stacked ? r1_name + " expert " + std::to_string(e) : r1_name;
      R1_REQUIRE(!slot.empty(), "no HF tensor for ", where, " (", pieces.size(), " other pieces, e.g. ",
                 *pieces.front().hf_name, ")");
      Shape s;
      if (slot.count(-1)) {
        R1_REQUIRE(slot.size() == 1, "HF tensor ", *slot.at(-1)->hf_name, " fills all of ", where,
                   ", but gate/up halves map there too");
        s = slot.at(-1)->tensor->shape();
      } else {
        R1_REQUIRE(slot.count(0) && slot.count(1), "HF tensor ", *slot.begin()->second->hf_name, ": the ",
                   slot.count(0) ? "up" : "gate", " half of ", where, " is missing");
        const Tensor& g = *slot.at(0)->tensor;
        const Tensor& u = *slot.at(1)->tensor;
        R1_REQUIRE(g.rank() == 2 && g.shape() == u.shape(), "HF tensors ", *slot.at(0)->hf_name, " ",
                   g.shape().str(), " and ", *slot.at(1)->hf_name, " ", u.shape().str(),
                   ": gate and up halves must be matrices of one shape");
        s = Shape{2 * g.dim(0), g.dim(1)};
      }
      if (e == 0) slot_shape = s;
      R1_REQUIRE(s == slot_shape, "HF tensors for ", where, ": shape ", s.str(), " differs from expert 0's ",
                 slot_shape.str());
    }
    Shape shape;
    if (stacked) shape.push_back(n_slots);
    for (int i = 0; i < slot_shape.rank(); ++i) shape.push_back(slot_shape[i]);

    Assembled a;
    a.tensor = Tensor::host(shape, DType::f32);
    float* dst = a.tensor.data<float>();
    for (const auto& slot : slots)
      for (const int part : {-1, 0, 1}) {  // whole, or gate rows then up rows
        const auto it = slot.find(part);
        if (it == slot.end()) continue;
        const Tensor& t = *it->second->tensor;
        std::memcpy(dst, t.data<float>(), t.nbytes());
        dst += t.numel();
      }
    for (const Piece& p : pieces) a.sources.push_back(*p.hf_name);
    out.emplace(r1_name, std::move(a));
  }
  return out;
}

std::map<std::string, Tensor> tensors_of(std::map<std::string, Assembled> assembled) {
  std::map<std::string, Tensor> out;
  for (auto& [name, a] : assembled) out.emplace(name, std::move(a.tensor));
  return out;
}

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
  return model_config_from_deck(Deck::parse(fx.deck_text, fx.name + ".h5:r1hpc_deck"));
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

HfTarget hf_target(const std::string& hf) {
  static const std::map<std::string, std::string> kTop = {
      {"model.embed_tokens.weight", "embed"}, {"model.norm.weight", "norm"}, {"lm_head.weight", "head"}};
  // Per-layer suffix -> (r1hpc suffix, part of gate_up).
  static const std::map<std::string, std::pair<std::string, int>> kLayer = {
      {"input_layernorm.weight", {"attn_norm", -1}},
      {"post_attention_layernorm.weight", {"ffn_norm", -1}},
      {"self_attn.q_proj.weight", {"attn.q_proj", -1}},
      {"self_attn.q_a_proj.weight", {"attn.q_a_proj", -1}},
      {"self_attn.q_a_layernorm.weight", {"attn.q_a_norm", -1}},
      {"self_attn.q_b_proj.weight", {"attn.q_b_proj", -1}},
      {"self_attn.kv_a_proj_with_mqa.weight", {"attn.kv_a_proj", -1}},
      {"self_attn.kv_a_layernorm.weight", {"attn.kv_a_norm", -1}},
      {"self_attn.kv_b_proj.weight", {"attn.kv_b_proj", -1}},
      {"self_attn.o_proj.weight", {"attn.o_proj", -1}},
      {"mlp.gate_proj.weight", {"mlp.gate_up", 0}},
      {"mlp.up_proj.weight", {"mlp.gate_up", 1}},
      {"mlp.down_proj.weight", {"mlp.down", -1}},
      {"mlp.gate.weight", {"moe.router", -1}},
      {"mlp.gate.e_score_correction_bias", {"moe.router_bias", -1}},
      {"mlp.shared_experts.gate_proj.weight", {"moe.shared.gate_up", 0}},
      {"mlp.shared_experts.up_proj.weight", {"moe.shared.gate_up", 1}},
      {"mlp.shared_experts.down_proj.weight", {"moe.shared.down", -1}},
      {"mlp.experts.gate_up_proj", {"moe.experts.gate_up", -1}},  // transformers >= 5: already stacked
      {"mlp.experts.down_proj", {"moe.experts.down", -1}},
  };
  static const std::map<std::string, std::pair<std::string, int>> kExpert = {
      {"gate_proj.weight", {"moe.experts.gate_up", 0}},
      {"up_proj.weight", {"moe.experts.gate_up", 1}},
      {"down_proj.weight", {"moe.experts.down", -1}},
  };

  if (const auto it = kTop.find(hf); it != kTop.end()) return HfTarget{it->second, -1, -1};
  const std::string layers = "model.layers.";
  std::size_t rest = 0;
  const long layer = starts_with(hf, layers) ? leading_index(hf, layers.size(), &rest) : -1;
  if (layer >= 0) {
    const std::string suffix = hf.substr(rest);
    const std::string prefix = "layers." + std::to_string(layer) + ".";
    if (const auto it = kLayer.find(suffix); it != kLayer.end())
      return HfTarget{prefix + it->second.first, -1, it->second.second};
    const std::string experts = "mlp.experts.";
    std::size_t after = 0;
    const long expert = starts_with(suffix, experts) ? leading_index(suffix, experts.size(), &after) : -1;
    if (expert >= 0)
      if (const auto it = kExpert.find(suffix.substr(after)); it != kExpert.end())
        return HfTarget{prefix + it->second.first, static_cast<int>(expert), it->second.second};
  }
  R1_FAIL(user, "HF tensor ", hf, " has no r1hpc counterpart");
}

std::map<std::string, Tensor> map_hf_tensors(const std::map<std::string, Tensor>& hf) { return tensors_of(assemble(hf)); }
std::map<std::string, Tensor> mapped_weights(const HfFixture& fx) { return map_hf_tensors(fx.weights); }
std::map<std::string, Tensor> mapped_grads(const HfFixture& fx) { return map_hf_tensors(fx.grads); }

void load_into(const HfFixture& fx, ParamStore& params) {
  const std::map<std::string, Assembled> mapped = assemble(fx.weights);
  std::set<std::string> filled;
  for (const auto& [name, a] : mapped) {
    R1_REQUIRE(params.contains(name), fx.name, ": HF tensor ", a.sources.front(), " maps to ", name,
               ", which the model does not have");
    Param& p = params.get(name);
    R1_REQUIRE(p.master.shape() == a.tensor.shape(), fx.name, ": HF tensor ", a.sources.front(), " maps to ", name,
               " of shape ", a.tensor.shape().str(), ", the model's is ", p.master.shape().str());
    copy(p.master, a.tensor);
    filled.insert(name);
  }
  for (const auto& p : params.all()) {
    if (filled.count(p->name)) continue;
    R1_REQUIRE(!p->trainable, fx.name, ": no HF tensor fills the model's parameter ", p->name, " ",
               p->shape.str());
    copy(p->master, Tensor::host_zeros(p->master.shape(), DType::f32));
  }
  params.refresh_compute();
}

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
