// r1hpc-bench-tokenizer: encode throughput (MB/s on one core) of each family fixture's tokenizer over its
// corpus texts, encoded one text at a time as tools/tokenizer_bench.py times Hugging Face tokenizers.
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

int main(int argc, char** argv) try {
  const fs::path dir = fs::path(argc > 1 ? argv[1] : R1HPC_TOKENIZER_FIXTURES) / "families";
  const double mib = argc > 2 ? std::stod(argv[2]) : 8.0;
  std::vector<fs::path> families;
  for (const auto& e : fs::directory_iterator(dir)) families.push_back(e.path());
  std::sort(families.begin(), families.end());
  std::printf("%-22s %10s %10s %12s\n", "family", "MiB", "seconds", "MB/s/core");
  for (const fs::path& f : families) {
    const r1::Tokenizer tok = r1::load_hf_tokenizer((f / "tokenizer.json").string());
    std::vector<std::string> texts;
    const auto fixture = nlohmann::json::parse(r1::read_file((f / "cases.json").string()));
    for (const auto& c : fixture["cases"])
      if (c.contains("text")) texts.push_back(c["text"].get<std::string>());
    std::size_t bytes = 0, ids = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (bytes < static_cast<std::size_t>(mib * 1024 * 1024))
      for (const std::string& t : texts) {
        ids += tok.encode(t).size();
        bytes += t.size();
      }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-22s %10.1f %10.3f %12.2f   (%zu ids)\n", f.filename().c_str(), static_cast<double>(bytes) / (1 << 20), s,
                static_cast<double>(bytes) / 1e6 / s, ids);
  }
  return 0;
} catch (const r1::Error& e) {
  std::fprintf(stderr, "r1hpc-bench-tokenizer: %s\n", e.what());
  return 1;
}
