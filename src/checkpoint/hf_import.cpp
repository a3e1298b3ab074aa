#include "checkpoint/hf_import.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "checkpoint/hf_names.hpp"
#include "checkpoint/safetensors.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"
#include "kernels/fp8.hpp"

namespace r1::hf {

namespace fs = std::filesystem;

namespace {

constexpr int kBlock = 128;  // DeepSeek-V3's weight block (REFERENCE: one weight_scale_inv per 128x128 block)

// Typed reads of config.json keys; every error names the file and the key.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string file) : j_(j), file_(std::move(file)) {}
  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const nlohmann::json& at(const char* key) const {
    if (!has(key)) fail(key, "missing");
    return j_.at(key);
  }
  std::int64_t integer(const char* key) const {
    if (!at(key).is_number_integer()) fail(key, "expected an integer, got " + at(key).dump());
    return at(key).get<std::int64_t>();
  }
  std::int64_t integer(const char* key, std::int64_t def) const { return has(key) ? integer(key) : def; }
  double real(const char* key) const {
    if (!at(key).is_number()) fail(key, "expected a number, got " + at(key).dump());
    return at(key).get<double>();
  }
  double real(const char* key, double def) const { return has(key) ? real(key) : def; }
  bool flag(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!at(key).is_boolean()) fail(key, "expected true or false, got " + at(key).dump());
    return at(key).get<bool>();
  }
  std::string text(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!at(key).is_string()) fail(key, "expected a string, got " + at(key).dump());
    return at(key).get<std::string>();
  }
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    R1_FAIL(user, file_, ": ", key, ": ", problem);
  }

 private:
  const nlohmann::json& j_;
  std::string file_;
};

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// RoPE settings: DeepSeek's released config.json has rope_theta and rope_scaling {type: yarn, ...};
// transformers >= 5 writes rope_parameters {rope_type, rope_theta, ...}.
struct Rope {
  double theta = 10000;
  bool yarn = false, llama3 = false;  // llama3: Llama-3.1's wavelength bands (factor, low/high, original)
  double factor = 1, beta_fast = 32, beta_slow = 1, mscale = 1, low_freq = 1, high_freq = 4;
  std::int64_t original = 0;
};
// yarn: whether the model's attention takes YaRN (MLA; the grouped-query students do not).
Rope read_rope(const ConfigReader& cfg, const std::string& file, bool yarn) {
  Rope r;
  const char* section = cfg.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  nlohmann::json params = cfg.has(section) ? cfg.at(section) : nlohmann::json::object();
  if (!params.is_object()) cfg.fail(section, "expected an object, got " + params.dump());
  const ConfigReader p(params, file + ": " + section);
  r.theta = p.has("rope_theta") ? p.real("rope_theta") : cfg.real("rope_theta", 10000);
  const std::string type = p.text("rope_type", p.text("type", "default"));
  if (type == "default") return r;
  if (type == "llama3") {
    r.llama3 = true;
    r.factor = p.real("factor");
    r.low_freq = p.real("low_freq_factor");
    r.high_freq = p.real("high_freq_factor");
    r.original = p.integer("original_max_position_embeddings");
    return r;
  }
  if (type != "yarn") p.fail("rope_type", "\"" + type + "\": r1hpc implements default RoPE, YaRN and llama3 only");
  if (!yarn) p.fail("rope_type", "\"yarn\": YaRN with grouped-query attention is not implemented (default RoPE and llama3 are)");
  r.yarn = true;
  r.factor = p.real("factor");
  r.original = p.integer("original_max_position_embeddings");
  r.beta_fast = p.real("beta_fast", 32);
  r.beta_slow = p.real("beta_slow", 1);
  r.mscale = p.real("mscale", 1);
  const double all_dim = p.real("mscale_all_dim", 0);
  // HF scales cos/sin by yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim) and the
  // softmax by mscale_all_dim's term squared; DeepSeek's reference (and r1hpc) has one mscale, used for the
  // softmax only, which is the same model exactly when the two agree.
  if (all_dim != r.mscale)
    p.fail("mscale_all_dim", "is " + num(all_dim) + " but mscale is " + num(r.mscale) +
                                 ": r1hpc has one YaRN mscale (DeepSeek-V3 sets both to 1.0) and cannot represent two");
  // cos/sin: transformers scales them by attention_factor, whose default is the ratio above (1) only when both
  // mscales are non-zero, else 0.1 ln(factor) + 1; DeepSeek's reference (and r1hpc) never scales them.
  const double default_factor = r.mscale != 0 || r.factor <= 1 ? 1.0 : 0.1 * std::log(r.factor) + 1.0;
  const double cos_sin = p.real("attention_factor", default_factor);
  if (cos_sin != 1.0)
    p.fail("attention_factor", (p.has("attention_factor") ? "is " : "is unset with mscale 0, so transformers uses 0.1 ln(factor) + 1 = ") +
                                   num(cos_sin) + ": transformers scales cos/sin by it, r1hpc never does (set attention_factor = 1.0)");
  return r;
}

bool is_fp8_linear(const std::string& hf_name) {
  // DeepSeek-V3's release quantises the attention and FFN projections; embedding, head, router, norms and
  // the MTP layer's eh_proj stay BF16.
  return hf_name.ends_with("_proj.weight") && hf_name.find("eh_proj") == std::string::npos;
}

// Llama / Qwen2 / Qwen3 (model/gqa.hpp): dense decoders with grouped-query attention, as [model] keys.
std::vector<std::string> gqa_overrides(const ConfigReader& cfg, const std::string& type, const std::string& file) {
  if (cfg.text("hidden_act", "silu") != "silu") cfg.fail("hidden_act", "r1hpc's FFNs are SwiGLU (silu)");
  if (cfg.flag("mlp_bias", false)) cfg.fail("mlp_bias", "r1hpc's SwiGLU FFN has no biases");
  // Qwen2's attention always has q/k/v biases and never an o_proj bias; Llama and Qwen3 have none here.
  if (type != "qwen2" && cfg.flag("attention_bias", false))
    cfg.fail("attention_bias", "r1hpc's " + type + " attention has no biases (only qwen2 has q/k/v biases)");
  if (cfg.flag("use_sliding_window", false)) cfg.fail("use_sliding_window", "r1hpc attends over the whole causal context");
  const Rope rope = read_rope(cfg, file, /*yarn=*/false);
  const std::int64_t heads = cfg.integer("num_attention_heads"), dim = cfg.integer("hidden_size");
  std::vector<std::string> o;
  const auto set = [&](const char* key, const std::string& value) { o.push_back(std::string("model.") + key + "=" + value); };
  const auto seti = [&](const char* key, std::int64_t v) { set(key, std::to_string(v)); };
  set("arch", type);
  set("dense", "true");
  seti("mtp_depth", 0);
  seti("vocab_size", cfg.integer("vocab_size"));
  seti("dim", dim);
  seti("n_layers", cfg.integer("num_hidden_layers"));
  seti("n_heads", heads);
  seti("n_kv_heads", cfg.integer("num_key_value_heads", heads));
  seti("head_dim", cfg.integer("head_dim", dim / heads));
  seti("dense_inter_dim", cfg.integer("intermediate_size"));
  set("rope_theta", num(rope.theta));
  set("rope_type", rope.llama3 ? "llama3" : "default");
  if (rope.llama3) {
    set("rope_factor", num(rope.factor));
    set("low_freq_factor", num(rope.low_freq));
    set("high_freq_factor", num(rope.high_freq));
    seti("original_seq_len", rope.original);
  }
  seti("max_seq_len", cfg.integer("max_position_embeddings"));
  set("norm_eps", num(cfg.real("rms_norm_eps")));
  if (cfg.has("initializer_range")) set("init_std", num(cfg.real("initializer_range")));
  set("tie_embeddings", cfg.flag("tie_word_embeddings", false) ? "true" : "false");
  return o;
}

// config.json of a Llama / Qwen2 / Qwen3 model, with the keys transformers' classes read.
nlohmann::json gqa_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  const std::string type(choice_word(c.arch));
  const char* cls = c.arch == Arch::llama ? "LlamaForCausalLM" : c.arch == Arch::qwen2 ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM";
  nlohmann::json j = {
      {"architectures", {cls}}, {"model_type", type}, {"vocab_size", c.vocab_size}, {"hidden_size", c.dim},
      {"intermediate_size", c.dense_inter_dim}, {"num_hidden_layers", c.n_layers}, {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.kv_heads()}, {"head_dim", c.gqa_head_dim()}, {"max_position_embeddings", c.max_seq_len},
      {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta}, {"tie_word_embeddings", c.tie_embeddings},
      {"hidden_act", "silu"}, {"initializer_range", c.init_std}, {"attention_dropout", 0.0}, {"torch_dtype", torch_dtype},
  };
  if (c.arch != Arch::qwen2) j["attention_bias"] = false;
  if (c.arch == Arch::llama) j["mlp_bias"] = false;
  else j["use_sliding_window"] = false;
  if (c.rope_type == RopeType::llama3)
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", c.rope_factor}, {"low_freq_factor", c.low_freq_factor},
                         {"high_freq_factor", c.high_freq_factor}, {"original_max_position_embeddings", c.original_seq_len}};
  else
    j["rope_scaling"] = nullptr;
  return j;
}

}  // namespace

std::vector<std::string> model_overrides(const nlohmann::json& config, const std::string& file) {
  if (!config.is_object()) R1_FAIL(user, file, ": not a JSON object");
  const ConfigReader cfg(config, file);
  const std::string type = cfg.text("model_type", "");
  if (type == "llama" || type == "qwen2" || type == "qwen3") return gqa_overrides(cfg, type, file);
  if (type != "deepseek_v3" && type != "deepseek_v2")
    cfg.fail("model_type", "\"" + type + "\": import_hf reads deepseek_v3, deepseek_v2, llama, qwen2 and qwen3 models");
  const bool v3 = type == "deepseek_v3";
  if (cfg.text("hidden_act", "silu") != "silu") cfg.fail("hidden_act", "r1hpc's FFNs are SwiGLU (silu)");
  if (cfg.flag("attention_bias", false)) cfg.fail("attention_bias", "r1hpc's attention projections have no bias");
  if (!cfg.flag("rope_interleave", true))
    cfg.fail("rope_interleave", "false rotates half-split pairs; r1hpc (like DeepSeek's reference) rotates interleaved "
                                "pairs, and these weights are laid out for the other rotation");

  const std::int64_t n_layers = cfg.integer("num_hidden_layers");
  const std::int64_t first_dense = cfg.integer("first_k_dense_replace", 0);
  const std::int64_t mtp = cfg.integer("num_nextn_predict_layers", 0);
  const bool dense = first_dense >= n_layers;
  if (dense && mtp > 0 && first_dense < n_layers + mtp)
    cfg.fail("first_k_dense_replace", "makes the trunk dense but the MTP layer MoE; r1hpc's MTP block has the trunk's FFN kind");
  const std::string score = cfg.text("scoring_func", v3 ? "sigmoid" : "softmax");
  if (score != "sigmoid" && score != "softmax") cfg.fail("scoring_func", "\"" + score + "\": sigmoid or softmax");
  const bool norm_topk = cfg.flag("norm_topk_prob", v3);
  if (!dense && norm_topk != (score == "sigmoid"))
    cfg.fail("norm_topk_prob", std::string(norm_topk ? "true" : "false") + " with " + score +
                                   " scores: r1hpc normalises the top-k gates exactly for sigmoid routing");
  const std::int64_t n_group = cfg.integer("n_group", 1), topk_group = cfg.integer("topk_group", 1);
  if (!v3 && n_group > 1 && cfg.text("topk_method", "greedy") != "greedy")
    cfg.fail("topk_method", "DeepSeek-V2's group_limited_greedy ranks groups by their best expert; r1hpc ranks them "
                            "by the sum of their top two (DeepSeek-V3)");

  const Rope rope = read_rope(cfg, file, /*yarn=*/true);
  if (rope.llama3) cfg.fail(cfg.has("rope_parameters") ? "rope_parameters" : "rope_scaling", "llama3 RoPE scaling with "
                            "MLA attention is not implemented (DeepSeek models use YaRN)");
  const std::int64_t max_pos = cfg.integer("max_position_embeddings");
  // HF applies YaRN whenever rope_type is yarn; DeepSeek's reference (and r1hpc) only beyond the original
  // context, so the two agree only when the model is longer than its original context.
  if (rope.yarn && max_pos <= rope.original)
    cfg.fail("max_position_embeddings", std::to_string(max_pos) + " is not above the YaRN original_max_position_embeddings " +
                                            std::to_string(rope.original) + ": r1hpc would not apply YaRN");

  std::vector<std::string> o;
  const auto set = [&](const char* key, const std::string& value) { o.push_back(std::string("model.") + key + "=" + value); };
  const auto seti = [&](const char* key, std::int64_t v) { set(key, std::to_string(v)); };
  seti("vocab_size", cfg.integer("vocab_size"));
  seti("dim", cfg.integer("hidden_size"));
  seti("n_layers", n_layers);
  seti("n_dense_layers", std::min(first_dense, n_layers));
  seti("n_heads", cfg.integer("num_attention_heads"));
  seti("dense_inter_dim", cfg.integer("intermediate_size"));
  set("dense", dense ? "true" : "false");
  if (!dense) {
    seti("moe_inter_dim", cfg.integer("moe_intermediate_size"));
    seti("n_routed_experts", cfg.integer("n_routed_experts"));
    seti("n_shared_experts", cfg.integer("n_shared_experts", 0));
    seti("n_activated_experts", cfg.integer("num_experts_per_tok"));
    seti("n_expert_groups", n_group);
    seti("n_limited_groups", topk_group);
    set("score_func", score);
    set("route_scale", num(cfg.real("routed_scaling_factor", 1.0)));
  }
  seti("q_lora_rank", cfg.integer("q_lora_rank", 0));
  seti("kv_lora_rank", cfg.integer("kv_lora_rank"));
  seti("qk_nope_head_dim", cfg.integer("qk_nope_head_dim"));
  seti("qk_rope_head_dim", cfg.integer("qk_rope_head_dim"));
  seti("v_head_dim", cfg.integer("v_head_dim"));
  set("rope_theta", num(rope.theta));
  set("rope_factor", num(rope.yarn ? rope.factor : 1.0));
  seti("original_seq_len", rope.yarn ? rope.original : max_pos);
  set("beta_fast", num(rope.beta_fast));
  set("beta_slow", num(rope.beta_slow));
  set("mscale", num(rope.mscale));
  seti("max_seq_len", max_pos);
  set("norm_eps", num(cfg.real("rms_norm_eps")));
  if (cfg.has("initializer_range")) set("init_std", num(cfg.real("initializer_range")));
  seti("mtp_depth", mtp);
  set("tie_embeddings", cfg.flag("tie_word_embeddings", false) ? "true" : "false");
  return o;
}

nlohmann::json config_json(const ModelConfig& c, const std::string& torch_dtype, bool fp8) {
  if (c.gqa()) {
    if (fp8) R1_FAIL(user, "export_hf: FP8 blocks are DeepSeek-V3's format; export a ", choice_word(c.arch), " model as bf16 or fp32");
    return gqa_config_json(c, torch_dtype);
  }
  const bool v3 = c.dense || c.score_func == RouterScore::sigmoid;
  if (!v3 && c.n_expert_groups > 1)
    R1_FAIL(user, "export_hf: softmax routing with ", c.n_expert_groups, " expert groups has no HF form (DeepSeek-V2's "
            "group_limited_greedy ranks groups by their best expert, r1hpc by the sum of their top two)");
  nlohmann::json j = {
      {"architectures", {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"}},
      {"model_type", v3 ? "deepseek_v3" : "deepseek_v2"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.dim},
      {"num_hidden_layers", c.n_layers},
      // A dense student is a DeepseekV3 model whose every layer (the MTP layer included) is dense.
      {"first_k_dense_replace", c.dense ? c.n_layers + c.mtp_depth : c.n_dense_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_heads},
      {"intermediate_size", c.dense_inter_dim},
      {"moe_intermediate_size", c.moe_inter_dim},
      {"n_routed_experts", c.n_routed_experts},
      {"n_shared_experts", c.n_shared_experts},
      {"num_experts_per_tok", c.n_activated_experts},
      {"n_group", c.n_expert_groups},
      {"topk_group", c.n_limited_groups},
      {"topk_method", v3 ? "noaux_tc" : "greedy"},
      {"scoring_func", c.score_func == RouterScore::sigmoid ? "sigmoid" : "softmax"},
      {"norm_topk_prob", c.normalize_gates},
      {"routed_scaling_factor", c.route_scale},
      {"q_lora_rank", c.q_lora_rank > 0 ? nlohmann::json(c.q_lora_rank) : nlohmann::json(nullptr)},
      {"kv_lora_rank", c.kv_lora_rank},
      {"qk_nope_head_dim", c.qk_nope_head_dim},
      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"v_head_dim", c.v_head_dim},
      {"rope_theta", c.rope_theta},
      {"rope_interleave", true},
      {"max_position_embeddings", c.max_seq_len},
      {"rms_norm_eps", c.norm_eps},
      {"initializer_range", c.init_std},
      {"num_nextn_predict_layers", c.mtp_depth},
      {"tie_word_embeddings", c.tie_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"torch_dtype", torch_dtype},
  };
  // YaRN is active in r1hpc only beyond the original context (see model_overrides).
  if (c.max_seq_len > c.original_seq_len)
    j["rope_scaling"] = {{"type", "yarn"}, {"rope_type", "yarn"}, {"factor", c.rope_factor},
                         {"original_max_position_embeddings", c.original_seq_len}, {"beta_fast", c.beta_fast},
                         {"beta_slow", c.beta_slow}, {"mscale", c.mscale}, {"mscale_all_dim", c.mscale},
                         // r1hpc leaves cos/sin unscaled; transformers' default would scale them when mscale is 0.
                         {"attention_factor", 1.0}};
  else
    j["rope_scaling"] = nullptr;
  if (fp8)
    j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                {"weight_block_size", {kBlock, kBlock}}};
  return j;
}

std::map<std::string, Tensor> read_hf_tensors(const fs::path& dir, const ModelConfig& c) {
  const fs::path config_file = dir / "config.json";
  int block_rows = kBlock, block_cols = kBlock;
  {
    const nlohmann::json config = nlohmann::json::parse(read_file(config_file.string()), nullptr, false);
    if (config.is_object() && config.contains("quantization_config")) {
      const auto& q = config.at("quantization_config");
      if (q.contains("weight_block_size")) {
        const auto& b = q.at("weight_block_size");
        if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
            b[0].get<int>() < 1 || b[1].get<int>() < 1)
          R1_FAIL(user, config_file.string(), ": quantization_config.weight_block_size: expected [rows, cols], got ", b.dump());
        block_rows = b[0].get<int>();
        block_cols = b[1].get<int>();
      }
    }
  }
  const st::Reader reader(dir);
  std::map<std::string, Tensor> out;
  for (const std::string& name : reader.names()) {
    const st::Entry& e = reader.entry(name);
    if (name.ends_with("_scale_inv")) {
      const std::string weight = name.substr(0, name.size() - 10);
      if (!reader.contains(weight) || reader.entry(weight).dtype != st::Dtype::f8_e4m3)
        R1_FAIL(user, e.file.string(), ": tensor ", name, " scales ", weight, ", which is not an F8_E4M3 tensor of the checkpoint");
      continue;
    }
    if (e.dtype != st::Dtype::f8_e4m3) {
      out.emplace(name, reader.read_f32(name));
      continue;
    }
    const std::string scale_name = name + "_scale_inv";
    if (e.shape.size() != 2) R1_FAIL(user, e.file.string(), ": tensor ", name, ": F8_E4M3 tensors must be matrices");
    if (!reader.contains(scale_name))
      R1_FAIL(user, e.file.string(), ": tensor ", name, " is F8_E4M3 but the checkpoint has no ", scale_name);
    kernels::Fp8Tensor q{reader.read(name), reader.read_f32(scale_name), block_rows, block_cols};
    const Shape want{(e.shape[0] + block_rows - 1) / block_rows, (e.shape[1] + block_cols - 1) / block_cols};
    if (!(q.scale_inv.shape() == want))
      R1_FAIL(user, reader.entry(scale_name).file.string(), ": tensor ", scale_name, " has shape ", q.scale_inv.shape().str(),
              "; ", block_rows, "x", block_cols, " blocks of ", name, " [", e.shape[0], ", ", e.shape[1], "] need ", want.str());
    Tensor y = Tensor::host(q.data.shape(), DType::f32);
    kernels::dequantize_fp8(kernels::Context::cpu(), q, y);
    out.emplace(name, std::move(y));
  }
  if (c.tie_embeddings && out.count("lm_head.weight")) {
    const Tensor& head = out.at("lm_head.weight");
    const auto embed = out.find("model.embed_tokens.weight");
    if (embed == out.end() || !(embed->second.shape() == head.shape()) ||
        std::memcmp(embed->second.raw(), head.raw(), head.nbytes()) != 0)
      R1_FAIL(user, dir.string(), ": tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight");
    out.erase("lm_head.weight");
  }
  return out;
}

std::int64_t absent_mtp_layers(const fs::path& dir, const nlohmann::json& config) {
  const ConfigReader cfg(config, (dir / "config.json").string());
  const std::int64_t layers = cfg.integer("num_hidden_layers"), mtp = cfg.integer("num_nextn_predict_layers", 0);
  if (mtp <= 0) return 0;
  const std::string prefix = "model.layers.";
  for (const std::string& name : st::Reader(dir).names()) {
    if (!name.starts_with(prefix)) continue;
    const std::string index = name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size());
    if (!index.empty() && index.size() < 10 && std::all_of(index.begin(), index.end(), ::isdigit) && std::stoll(index) >= layers)
      return 0;
  }
  return mtp;
}

void import_weights(const fs::path& dir, const ModelConfig& c, ParamStore& params, bool fresh_mtp) {
  std::map<std::string, Tensor> hf = read_hf_tensors(dir, c);
  if (c.gqa()) permute_rope_pairs(hf, c.gqa_head_dim(), /*to_r1hpc=*/true);
  load_hf_tensors(hf, params, dir.string(), c.mtp_depth > 0 && !fresh_mtp ? c.n_layers : -1, fresh_mtp ? "mtp." : "");
}

std::vector<fs::path> export_weights(const ParamStore& params, const ModelConfig& c, const fs::path& dir,
                                     const ExportOptions& options) {
  R1_REQUIRE(options.dtype == "fp32" || options.dtype == "bf16" || options.dtype == "fp8", "export_hf: dtype ",
             options.dtype, " (fp32, bf16 or fp8)");
  std::map<std::string, Tensor> r1;
  for (const auto& p : params.all()) {
    Tensor host = Tensor::host(p->master.shape(), DType::f32);
    copy(host, p->master);
    if (p->name.ends_with("moe.router_bias") && c.score_func == RouterScore::softmax && !c.dense) {
      // DeepSeek-V2 has no selection bias: it can only be dropped when it is zero.
      const float* b = host.data<float>();
      R1_REQUIRE(std::all_of(b, b + host.numel(), [](float v) { return v == 0.0f; }), "export_hf: ", p->name,
                 " is not zero, but softmax routing exports as DeepSeek-V2, which has no selection bias");
      continue;
    }
    r1.emplace(p->name, std::move(host));
  }
  const nlohmann::json config = config_json(c, options.dtype == "fp32" ? "float32" : "bfloat16", options.dtype == "fp8");
  std::map<std::string, Tensor> hf = to_hf_tensors(r1, c.n_layers);
  if (c.gqa()) permute_rope_pairs(hf, c.gqa_head_dim(), /*to_r1hpc=*/false);
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : hf) {
    if (options.dtype == "fp32") {
      out.emplace(name, std::move(t));
      continue;
    }
    if (options.dtype == "fp8" && t.rank() == 2 && is_fp8_linear(name)) {
      const kernels::Context cpu = kernels::Context::cpu();
      kernels::Fp8Tensor q = kernels::make_fp8(cpu, t.dim(0), t.dim(1), kBlock, kBlock);
      kernels::quantize_fp8(cpu, t, q);
      out.emplace(name + "_scale_inv", q.scale_inv);
      out.emplace(name, q.data);
      continue;
    }
    Tensor b = Tensor::host(t.shape(), DType::bf16);
    std::transform(t.data<float>(), t.data<float>() + t.numel(), b.data<bf16>(), [](float v) { return to_bf16(v); });
    out.emplace(name, std::move(b));
  }
  fs::create_directories(dir);
  std::vector<fs::path> files = st::write_checkpoint(dir, out, {.max_shard_bytes = options.max_shard_bytes,
                                                                .metadata = {{"format", "pt"}}});
  files.push_back(dir / "config.json");
  write_file_atomic(files.back().string(), config.dump(2) + "\n");
  return files;
}

}  // namespace r1::hf
