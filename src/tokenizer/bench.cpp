// r1hpc-bench-tokenizer: encode throughput (MB/s on one core) of each family fixture's tokenizer over its
// corpus texts, as tools/tokenizer_bench.py times Hugging Face tokenizers: each text encoded on its own
// ("texts"), and the texts joined by newlines into documents of about 1 MiB ("documents").
//   r1hpc-bench-tokenizer [FIXTURES_DIR] [MIB]   (default: the source tree's fixtures, 8 MiB per family)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;

namespace {

// Encodes texts in turn until `total` bytes are done; MB/s.
double mb_per_s(const r1::Tokenizer& tok, const std::vector<std::string>& texts, std::size_t total) {
  std::size_t bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (bytes < total)
    for (const std::string& t : texts) {
      tok.encode(t);
      bytes += t.size();
    }
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) try {
  const fs::path dir = fs::path(argc > 1 ? argv[1] : R1HPC_TOKENIZER_FIXTURES) / "families";
  const double mib = argc > 2 ? std::stod(argv[2]) : 8.0;
  std::vector<fs::path> families;
  for (const auto& e : fs::directory_iterator(dir)) families.push_back(e.path());
  std::sort(families.begin(), families.end());
  std::printf("%-22s %8s %16s %16s\n", "family", "MiB", "texts MB/s", "documents MB/s");
  for (const fs::path& f : families) {
    const r1::Tokenizer tok = r1::load_hf_tokenizer((f / "tokenizer.json").string());
    std::vector<std::string> texts;
    const auto fixture = nlohmann::json::parse(r1::read_file((f / "cases.json").string()));
    for (const auto& c : fixture["cases"])
      if (c.contains("text")) texts.push_back(c["text"].get<std::string>());
    std::string document;
    while (document.size() < (1u << 20))
      for (const std::string& t : texts) document += t + "\n";
    const auto total = static_cast<std::size_t>(mib * 1024 * 1024);
    const double per_text = mb_per_s(tok, texts, total), per_document = mb_per_s(tok, {document}, total);
    std::printf("%-22s %8.1f %16.2f %16.2f\n", f.filename().c_str(), mib, per_text, per_document);
  }
  return 0;
} catch (const r1::Error& e) {
  std::fprintf(stderr, "r1hpc-bench-tokenizer: %s\n", e.what());
  return 1;
}
