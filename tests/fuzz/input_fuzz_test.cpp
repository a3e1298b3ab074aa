// A seeded random mutator over every reader of user input: the deck parser and its validation, the SFT and
// GSM8K/MATH JSONL readers, HDF5 token shards, safetensors checkpoints, Hugging Face config.json and
// tokenizer.json. Each mutated input must either load or give an r1hpc user error (exit 2 with a message);
// any other exception (an internal error, exit 1) or a crash fails the test. Each target runs for
// R1HPC_FUZZ_SECONDS (default 4) from a fixed seed and prints its executions and the distinct errors it met.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

#include "checkpoint/hf_import.hpp"
#include "checkpoint/safetensors.hpp"
#include "core/error.hpp"
#include "data/problem_files.hpp"
#include "data/token_shards.hpp"
#include "data/sft_data.hpp"
#include "deck/deck.hpp"
#include "deck/validate.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = R1HPC_SOURCE_DIR;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Structure-aware-ish mutations: bit flips, bytes and tokens that matter to INI and JSON, numbers at the
// edges of their types, cut, repeated and deleted ranges.
class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}
  std::string operator()(std::string s) {
    const int ops = 1 + static_cast<int>(pick(4));
    for (int i = 0; i < ops; ++i) mutate_once(s);
    return s;
  }

 private:
  std::size_t pick(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  void mutate_once(std::string& s) {
    static const std::vector<std::string> tokens = {
        "{", "}", "[", "]", "\"", ":", ",", "=", "\n", "[model]", "#", "\\", "\\u0000", "-1", "0", "1e308", "-1e308",
        "NaN", "inf", "null", "true", "[]", "{}", "\"\"", "99999999999999999999", "4294967296", "-9223372036854775809",
        "0.5", "\xff\xfe", "\xc3\x28", "\"dtype\":\"F32\"", "\"shape\":[", "\"data_offsets\":[", "preset = tiny"};
    const std::size_t at = pick(s.size() + 1);
    switch (pick(7)) {
      case 0:
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
        break;
      case 1:
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
        break;
      case 2: s.insert(at, tokens[pick(tokens.size())]); break;
      case 3: s.erase(at, pick(16) + 1); break;
      case 4: s.resize(at); break;
      case 5: s.insert(at, s.substr(pick(s.size() + 1), pick(32) + 1)); break;
      default:  // replace a run of digits by another number
        for (std::size_t i = at; i < s.size(); ++i)
          if (std::isdigit(static_cast<unsigned char>(s[i]))) {
            std::size_t j = i;
            while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
            s.replace(i, j - i, tokens[14 + pick(6)]);
            break;
          }
    }
  }
  std::mt19937_64 rng_;
};

double fuzz_seconds() {
  const char* v = std::getenv("R1HPC_FUZZ_SECONDS");
  return v ? std::atof(v) : 4.0;
}

// Runs `load` on mutations of the seed inputs until the time is up; every failure must be a user error.
void fuzz(const std::string& target, const std::vector<std::string>& seeds, const std::function<void(const std::string&)>& load,
          std::uint64_t seed) {
  ASSERT_FALSE(seeds.empty());
  for (const std::string& s : seeds) ASSERT_NO_THROW(load(s)) << target << ": a seed input does not load";
  Mutator mutate(seed);
  std::set<std::string> errors;
  std::int64_t runs = 0, loaded = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(fuzz_seconds());
  while (std::chrono::steady_clock::now() < end) {
    const std::string input = mutate(seeds[static_cast<std::size_t>(runs) % seeds.size()]);
    ++runs;
    std::string finding;
    try {
      load(input);
      ++loaded;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::user) errors.insert(e.message().substr(0, 60));
      else finding = std::string("a ") + error_kind_name(e.kind()) + " error, not a user error: " + e.what();
    } catch (const std::exception& e) {
      finding = std::string(typeid(e).name()) + " escaped as an internal error: " + e.what();
    }
    if (!finding.empty()) {
      const fs::path keep = fs::temp_directory_path() / ("r1hpc_fuzz_finding_" + target);
      std::ofstream(keep, std::ios::binary | std::ios::trunc) << input;
      ADD_FAILURE() << target << " run " << runs << ": " << finding << " (input kept in " << keep.string() << ")";
      return;
    }
  }
  std::printf("fuzz %-12s %8lld executions, %6lld loaded, %4zu distinct errors\n", target.c_str(), static_cast<long long>(runs),
              static_cast<long long>(loaded), errors.size());
  EXPECT_GT(errors.size(), 3u) << target << ": the mutations never reached the reader's checks";
}

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("r1hpc_fuzz_" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
  std::string put(const std::string& name, const std::string& bytes) const {
    const fs::path p = dir / name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    return p.string();
  }
};

}  // namespace

TEST(InputFuzz, DeckParserAndValidation) {
  std::vector<std::string> seeds;
  for (const char* d : {"tests/e2e/pretrain_tiny.deck", "inputs/pipeline/00_pretrain_small.deck", "inputs/quickstart/self_check.deck"})
    seeds.push_back(read_all(kSource / d));
  const fs::path deck_file = kSource / "tests/e2e/fuzz.deck";  // beside the seeds: relative presets resolve alike
  fuzz("deck", seeds, [&](const std::string& text) { validate_deck(Deck::parse(text, deck_file.string()), 1); }, 1);
}

TEST(InputFuzz, SftJsonl) {
  const Scratch s;
  const std::vector<std::string> seeds = {
      "{\"prompt\": \"2+2?\", \"response\": \"<think>2+2=4</think><answer>4</answer>\"}\n"
      "{\"prompt\": \"hola\", \"response\": \"hola\", \"provenance\": {\"step\": 3}}\n"};
  fuzz("sft_jsonl", seeds, [&](const std::string& text) { load_sft_jsonl(s.put("sft.jsonl", text)); }, 2);
}

TEST(InputFuzz, ProblemFiles) {
  const Scratch s;
  const fs::path fx = kSource / "tests/data/fixtures";
  const std::string gsm = read_all(fx / "gsm8k_tiny.jsonl"), math = read_all(fx / "math_tiny.jsonl");
  fuzz("gsm8k", {gsm}, [&](const std::string& text) { load_gsm8k(s.put("gsm.jsonl", text)); }, 3);
  fuzz("math", {math}, [&](const std::string& text) { load_math(s.put("math.jsonl", text)); }, 4);
  fuzz("problem_file", {gsm, math}, [&](const std::string& text) { load_problem_file(s.put("p.jsonl", text)); }, 5);
}

TEST(InputFuzz, Safetensors) {
  const Scratch s;
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, dt] : {std::pair{"a.weight", DType::f32}, std::pair{"b.bias", DType::bf16}}) {
    Tensor t = Tensor::host({3, 2}, dt);
    std::memset(t.raw(), 0x3c, t.nbytes());
    tensors.emplace(name, std::move(t));
  }
  const fs::path good = s.dir / "good.safetensors";
  st::write_file(good, tensors, {{"format", "pt"}});
  fuzz("safetensors", {read_all(good)}, [&](const std::string& bytes) {
    const st::Reader r(s.put("m.safetensors", bytes));
    for (const std::string& n : r.names()) r.read_f32(n);
  }, 6);
}

TEST(InputFuzz, TokenizerJson) {
  const Scratch s;
  const std::string seed = read_all(kSource / "tests/tokenizer/fixtures/hf_gpt2_bpe.json");
  fuzz("tokenizer", {seed}, [&](const std::string& text) {
    const Tokenizer t = load_hf_tokenizer(s.put("tokenizer.json", text));
    // A tokenizer that loads must keep every byte: one that silently changes text is a finding. The probe
    // starts with a space, so a ByteLevel pre-tokenizer whose add_prefix_space is on (its default when a
    // mutation renames the key) adds none, as in Hugging Face tokenizers.
    const std::string probe = " Hello, world 123 \xc2\xbfqu\xc3\xa9? <|eos|>";
    if (t.decode(t.encode(probe)) != probe) throw std::logic_error("a loaded tokenizer does not round-trip text");
  }, 7);
}

TEST(InputFuzz, HfConfigJson) {
  // import_hf's path: config.json parsed, mapped to [model] keys, and the model's rules checked.
  const Scratch s;
  const fs::path model = kSource / "tests/fixtures/hf_safetensors/moe_sigmoid_groups";
  const std::string deck = "[run]\nstage = import_hf\noutput_dir = " + (s.dir / "out").string() + "\n[hf]\npath = " + model.string() + "\n";
  fuzz("hf_config", {read_all(model / "config.json")}, [&](const std::string& text) {
    const nlohmann::json config = nlohmann::json::parse(text, nullptr, false);
    if (config.is_discarded()) R1_FAIL(user, "config.json: not valid JSON");  // what run_import_hf reports
    validate_model(Deck::parse(deck, (s.dir / "import.deck").string(), hf::model_overrides(config, "config.json")));
  }, 8);
}

TEST(InputFuzz, TokenShards) {
  // HDF5 token shards, read in a child process: a damaged file is an error naming it, never a crash.
  const Scratch s;
  const fs::path seed = kSource / "tests/data/fixtures/tokens.h5";
  fuzz("token_shards", {read_all(seed)}, [&](const std::string& bytes) { read_token_shards(s.put("t.h5", bytes), 1000); }, 9);
}
