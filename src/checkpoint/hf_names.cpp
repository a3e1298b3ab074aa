#include "checkpoint/hf_names.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace r1::hf {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Digits at s[pos...] followed by '.', as an index (end: the position after the '.'); -1 when s has none there.
long leading_index(const std::string& s, std::size_t pos, std::size_t* end) {
  std::size_t e = pos;
  while (e < s.size() && s[e] >= '0' && s[e] <= '9') ++e;
  if (e == pos || e >= s.size() || s[e] != '.') return -1;
  *end = e + 1;
  return std::stol(s.substr(pos, e - pos));
}

struct LayerName {
  const char* hf;  // suffix after model.layers.L.
  const char* r1;  // suffix after layers.L.
  int part;        // row block of gate_up, -1 whole
};
// One table for both directions. The fused transformers >= 5 expert names come last: they are read, never written.
constexpr LayerName kLayer[] = {
    {"input_layernorm.weight", "attn_norm", -1},
    {"post_attention_layernorm.weight", "ffn_norm", -1},
    {"self_attn.q_proj.weight", "attn.q_proj", -1},
    {"self_attn.q_a_proj.weight", "attn.q_a_proj", -1},
    {"self_attn.q_a_layernorm.weight", "attn.q_a_norm", -1},
    {"self_attn.q_b_proj.weight", "attn.q_b_proj", -1},
    {"self_attn.kv_a_proj_with_mqa.weight", "attn.kv_a_proj", -1},
    {"self_attn.kv_a_layernorm.weight", "attn.kv_a_norm", -1},
    {"self_attn.kv_b_proj.weight", "attn.kv_b_proj", -1},
    {"self_attn.o_proj.weight", "attn.o_proj", -1},
    {"self_attn.k_proj.weight", "attn.k_proj", -1},  // grouped-query attention (Llama, Qwen2, Qwen3)
    {"self_attn.v_proj.weight", "attn.v_proj", -1},
    {"self_attn.q_proj.bias", "attn.q_bias", -1},
    {"self_attn.k_proj.bias", "attn.k_bias", -1},
    {"self_attn.v_proj.bias", "attn.v_bias", -1},
    {"self_attn.q_norm.weight", "attn.q_norm", -1},
    {"self_attn.k_norm.weight", "attn.k_norm", -1},
    {"mlp.gate_proj.weight", "mlp.gate_up", 0},
    {"mlp.up_proj.weight", "mlp.gate_up", 1},
    {"mlp.down_proj.weight", "mlp.down", -1},
    {"mlp.gate.weight", "moe.router", -1},
    {"mlp.gate.e_score_correction_bias", "moe.router_bias", -1},
    {"mlp.shared_experts.gate_proj.weight", "moe.shared.gate_up", 0},
    {"mlp.shared_experts.up_proj.weight", "moe.shared.gate_up", 1},
    {"mlp.shared_experts.down_proj.weight", "moe.shared.down", -1},
    {"mlp.experts.gate_up_proj", "moe.experts.gate_up", -1},
    {"mlp.experts.down_proj", "moe.experts.down", -1},
};
constexpr LayerName kExpert[] = {
    {"gate_proj.weight", "moe.experts.gate_up", 0},
    {"up_proj.weight", "moe.experts.gate_up", 1},
    {"down_proj.weight", "moe.experts.down", -1},
};
// The MTP layer's own tensors (suffix after model.layers.{n_layers + k}.), besides its block.
constexpr LayerName kMtp[] = {
    {"enorm.weight", "enorm", -1},
    {"hnorm.weight", "hnorm", -1},
    {"shared_head.norm.weight", "norm", -1},
};

// The target of a per-layer suffix (block tensors of the trunk or of an MTP module) under `prefix`.
bool block_target(const std::string& suffix, const std::string& prefix, HfTarget* out) {
  for (const LayerName& l : kLayer)
    if (suffix == l.hf) {
      *out = HfTarget{prefix + l.r1, -1, l.part};
      return true;
    }
  const std::string experts = "mlp.experts.";
  std::size_t after = 0;
  const long expert = starts_with(suffix, experts) ? leading_index(suffix, experts.size(), &after) : -1;
  if (expert < 0) return false;
  for (const LayerName& l : kExpert)
    if (suffix.substr(after) == l.hf) {
      *out = HfTarget{prefix + l.r1, static_cast<int>(expert), l.part};
      return true;
    }
  return false;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A mapped r1hpc tensor and the HF tensors it was made from (for error messages).
struct Assembled {
  Tensor tensor;
  std::vector<std::string> sources;
};

// Columns [c0, c0 + n) of a host f32 matrix.
Tensor columns(const Tensor& m, std::int64_t c0, std::int64_t n) {
  Tensor out = Tensor::host({m.dim(0), n}, DType::f32);
  for (std::int64_t r = 0; r < m.dim(0); ++r)
    std::memcpy(out.data<float>() + r * n, m.data<float>() + r * m.dim(1) + c0, static_cast<std::size_t>(n) * sizeof(float));
  return out;
}

std::map<std::string, Assembled> assemble(const std::map<std::string, Tensor>& hf, std::int64_t mtp_layer) {
  struct Piece {
    const std::string* hf_name;
    const Tensor* tensor;
    HfTarget target;
  };
  std::map<std::string, std::vector<Piece>> by_target;
  std::vector<Piece> shared;
  std::map<std::string, Assembled> out;
  for (const auto& [name, t] : hf) {
    HfTarget target = hf_target(name, mtp_layer);
    R1_REQUIRE(t.dtype() == DType::f32 && t.on_host(), "HF tensor ", name, ": expected a host f32 tensor, got ", t.str());
    if (target.kind == HfTarget::Kind::mtp_shared) {
      shared.push_back(Piece{&name, &t, std::move(target)});
    } else if (target.kind == HfTarget::Kind::mtp_eh_proj) {
      R1_REQUIRE(t.rank() == 2 && t.dim(1) == 2 * t.dim(0), "HF tensor ", name, " ", t.shape().str(),
                 ": expected [D, 2 D] (embedding columns, then hidden-state columns)");
      out.emplace(target.name + ".proj_e", Assembled{columns(t, 0, t.dim(0)), {name}});
      out.emplace(target.name + ".proj_h", Assembled{columns(t, t.dim(0), t.dim(0)), {name}});
    } else {
      by_target[target.name].push_back(Piece{&name, &t, std::move(target)});
    }
  }

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
    const auto [it, fresh] = out.emplace(r1_name, std::move(a));
    R1_REQUIRE(fresh, "HF tensors ", it->second.sources.front(), " and ", pieces.front().hf_name, " both map to ", r1_name);
  }

  // The MTP layer repeats the embedding and the head (DeepSeek-V3's release); r1hpc shares them, so a copy
  // that differs cannot be represented.
  for (const Piece& p : shared) {
    const auto it = out.find(p.target.name);
    R1_REQUIRE(it != out.end(), "HF tensor ", *p.hf_name, " is the MTP layer's copy of ", p.target.name,
               ", but the checkpoint has no main ", p.target.name);
    R1_REQUIRE(bit_equal(*p.tensor, it->second.tensor), "HF tensor ", *p.hf_name, " differs from ",
               it->second.sources.front(), ": r1hpc's MTP module shares the main model's ", p.target.name);
  }
  return out;
}

}  // namespace

HfTarget hf_target(const std::string& hf, std::int64_t mtp_layer) {
  if (hf == "model.embed_tokens.weight") return HfTarget{"embed"};
  if (hf == "model.norm.weight") return HfTarget{"norm"};
  if (hf == "lm_head.weight") return HfTarget{"head"};
  const std::string layers = "model.layers.";
  std::size_t rest = 0;
  const long layer = starts_with(hf, layers) ? leading_index(hf, layers.size(), &rest) : -1;
  if (layer >= 0) {
    const std::string suffix = hf.substr(rest);
    HfTarget t;
    if (mtp_layer < 0 || layer < mtp_layer) {
      if (block_target(suffix, "layers." + std::to_string(layer) + ".", &t)) return t;
    } else {
      const std::string mtp = "mtp." + std::to_string(layer - mtp_layer);
      if (suffix == "eh_proj.weight") return HfTarget{mtp, -1, -1, HfTarget::Kind::mtp_eh_proj};
      if (suffix == "embed_tokens.weight") return HfTarget{"embed", -1, -1, HfTarget::Kind::mtp_shared};
      if (suffix == "shared_head.head.weight") return HfTarget{"head", -1, -1, HfTarget::Kind::mtp_shared};
      for (const LayerName& l : kMtp)
        if (suffix == l.hf) return HfTarget{mtp + "." + l.r1};
      if (block_target(suffix, mtp + ".block.", &t)) return t;
    }
  }
  R1_FAIL(user, "HF tensor ", hf, " has no r1hpc counterpart");
}

std::map<std::string, Tensor> map_hf_tensors(const std::map<std::string, Tensor>& hf, std::int64_t mtp_layer) {
  std::map<std::string, Tensor> out;
  for (auto& [name, a] : assemble(hf, mtp_layer)) out.emplace(name, std::move(a.tensor));
  return out;
}

void load_hf_tensors(const std::map<std::string, Tensor>& hf, ParamStore& params, const std::string& source,
                     std::int64_t mtp_layer, const std::string& keep_prefix) {
  const std::map<std::string, Assembled> mapped = assemble(hf, mtp_layer);
  std::set<std::string> filled;
  for (const auto& [name, a] : mapped) {
    R1_REQUIRE(params.contains(name), source, ": HF tensor ", a.sources.front(), " maps to ", name,
               ", which the model does not have");
    Param& p = params.get(name);
    R1_REQUIRE(p.master.shape() == a.tensor.shape(), source, ": HF tensor ", a.sources.front(), " maps to ", name,
               " of shape ", a.tensor.shape().str(), ", the model's is ", p.master.shape().str());
    copy(p.master, a.tensor);
    filled.insert(name);
  }
  for (const auto& p : params.all()) {
    if (filled.count(p->name) || (!keep_prefix.empty() && p->name.starts_with(keep_prefix))) continue;
    R1_REQUIRE(!p->trainable, source, ": no HF tensor fills the model's parameter ", p->name, " ", p->shape.str());
    copy(p->master, Tensor::host_zeros(p->master.shape(), DType::f32));
  }
  params.refresh_compute();
}

void permute_rope_pairs(std::map<std::string, Tensor>& hf, std::int64_t head_dim, bool to_r1hpc) {
  const std::int64_t half = head_dim / 2;
  for (auto& [name, t] : hf) {
    const bool rotated = name.ends_with("self_attn.q_proj.weight") || name.ends_with("self_attn.k_proj.weight") ||
                         name.ends_with("self_attn.q_proj.bias") || name.ends_with("self_attn.k_proj.bias") ||
                         name.ends_with("self_attn.q_norm.weight") || name.ends_with("self_attn.k_norm.weight");
    if (!rotated) continue;
    R1_REQUIRE(t.dtype() == DType::f32 && t.dim(0) % head_dim == 0, "HF tensor ", name, " ", t.shape().str(),
               ": its rows are not whole heads of head_dim ", head_dim);
    const std::int64_t cols = t.rank() == 2 ? t.dim(1) : 1;
    Tensor out = Tensor::host(t.shape(), DType::f32);
    // Per head: r1hpc's feature 2i + s (s = 0, 1) is Hugging Face's i + s half.
    for (std::int64_t h = 0; h < t.dim(0) / head_dim; ++h)
      for (std::int64_t i = 0; i < half; ++i)
        for (std::int64_t s = 0; s < 2; ++s) {
          const std::int64_t ours = h * head_dim + 2 * i + s, theirs = h * head_dim + i + s * half;
          const std::int64_t from = to_r1hpc ? theirs : ours, to = to_r1hpc ? ours : theirs;
          std::memcpy(out.data<float>() + to * cols, t.data<float>() + from * cols, cols * sizeof(float));
        }
    t = std::move(out);
  }
}

std::map<std::string, Tensor> to_hf_tensors(const std::map<std::string, Tensor>& r1, std::int64_t n_layers) {
  std::map<std::string, Tensor> out;
  const auto put = [&](const std::string& name, Tensor t) {
    R1_CHECK(out.emplace(name, std::move(t)).second, "to_hf_tensors: ", name, " written twice");
  };
  // Row block `part` (0 first half, 1 second half; -1 all) of the slot `expert` (-1: not stacked) of t.
  const auto piece = [](const Tensor& t, int expert, int part) {
    const Tensor slot = expert < 0 ? t : t.slice(expert, expert + 1);
    const std::int64_t rows = t.dim(expert < 0 ? 0 : 1), cols = t.dim(-1);
    const std::int64_t n = part < 0 ? rows : rows / 2;
    Tensor o = Tensor::host(expert < 0 && t.rank() == 1 ? Shape{rows} : Shape{n, cols}, DType::f32);
    const float* src = slot.data<float>() + (part == 1 ? n * cols : 0);
    std::memcpy(o.data<float>(), src, o.nbytes());
    return o;
  };
  // The HF tensors of one block's parameter `suffix` (after the prefix) under the HF layer prefix.
  const auto block = [&](const std::string& suffix, const Tensor& t, const std::string& hf_prefix, const std::string& r1_name) {
    if (suffix == "moe.experts.gate_up" || suffix == "moe.experts.down") {
      for (int e = 0; e < t.dim(0); ++e)
        for (const LayerName& l : kExpert)
          if (suffix == l.r1) put(hf_prefix + "mlp.experts." + std::to_string(e) + "." + l.hf, piece(t, e, l.part));
      return;
    }
    bool found = false;
    for (const LayerName& l : kLayer)
      if (suffix == l.r1) {
        put(hf_prefix + l.hf, piece(t, -1, l.part));
        found = true;
      }
    R1_CHECK(found, "to_hf_tensors: no HF name for ", r1_name);
  };

  for (const auto& [name, t] : r1) {
    R1_CHECK(t.on_host() && t.dtype() == DType::f32, "to_hf_tensors: ", name, " must be host f32, is ", t.str());
    if (name == "embed") { put("model.embed_tokens.weight", t); continue; }
    if (name == "norm") { put("model.norm.weight", t); continue; }
    if (name == "head") { put("lm_head.weight", t); continue; }
    std::size_t rest = 0;
    if (starts_with(name, "layers.")) {
      const long layer = leading_index(name, 7, &rest);
      R1_CHECK(layer >= 0, "to_hf_tensors: no HF name for ", name);
      block(name.substr(rest), t, "model.layers." + std::to_string(layer) + ".", name);
      continue;
    }
    const long k = starts_with(name, "mtp.") ? leading_index(name, 4, &rest) : -1;
    R1_CHECK(k >= 0, "to_hf_tensors: no HF name for ", name);
    const std::string hf_prefix = "model.layers." + std::to_string(n_layers + k) + ".";
    const std::string suffix = name.substr(rest);
    if (starts_with(suffix, "block.")) {
      block(suffix.substr(6), t, hf_prefix, name);
    } else if (suffix == "proj_e") {
      const Tensor& h = r1.at("mtp." + std::to_string(k) + ".proj_h");
      const std::int64_t d = t.dim(0);
      Tensor eh = Tensor::host({d, 2 * d}, DType::f32);
      for (std::int64_t r = 0; r < d; ++r) {
        std::memcpy(eh.data<float>() + r * 2 * d, t.data<float>() + r * d, static_cast<std::size_t>(d) * sizeof(float));
        std::memcpy(eh.data<float>() + r * 2 * d + d, h.data<float>() + r * d, static_cast<std::size_t>(d) * sizeof(float));
      }
      put(hf_prefix + "eh_proj.weight", eh);
      put(hf_prefix + "embed_tokens.weight", r1.at("embed"));
      put(hf_prefix + "shared_head.head.weight", r1.count("head") ? r1.at("head") : r1.at("embed"));
    } else if (suffix != "proj_h") {  // proj_h went into eh_proj with proj_e
      bool found = false;
      for (const LayerName& l : kMtp)
        if (suffix == l.r1) {
          put(hf_prefix + l.hf, t);
          found = true;
        }
      R1_CHECK(found, "to_hf_tensors: no HF name for ", name);
    }
  }
  return out;
}

}  // namespace r1::hf
