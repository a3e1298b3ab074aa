#include "app/verify_checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/verify.hpp"
#include "core/error.hpp"
#include "run/signals.hpp"

namespace fs = std::filesystem;

namespace r1 {

namespace {

// The step directories to check: PATH itself, or every step-NNNNNNNN of a checkpoints directory.
std::vector<fs::path> checkpoints_at(const fs::path& path) {
  R1_REQUIRE(fs::is_directory(path), "--verify-checkpoint ", path.string(), ": no such directory");
  if (fs::exists(path / "index.h5")) return {path};
  const std::regex step_dir{R"(step-\d{8})"};
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_directory() && std::regex_match(e.path().filename().string(), step_dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  R1_REQUIRE(!out.empty() || fs::exists(path / "latest"), "--verify-checkpoint ", path.string(),
             ": neither a checkpoint (no index.h5) nor a checkpoints directory (no step-NNNNNNNN, no latest)");
  return out;
}

bool report(const fs::path& checkpoint, std::ostream& out) {
  const ckpt::VerifyResult r = ckpt::verify_checkpoint(checkpoint, ckpt::VerifyDepth::full);
  char numbers[200];
  std::snprintf(numbers, sizeof numbers, "%lld tensors in %lld shard file(s), %.2f MiB read back", static_cast<long long>(r.tensors),
                static_cast<long long>(r.shards), static_cast<double>(r.bytes) / (1 << 20));
  if (r.ok()) {
    out << "checkpoint " << checkpoint.string() << ": OK (stage " << r.stage << ", step " << r.step << "; " << numbers
        << "; Fletcher32 and HDF5 metadata checksums good, every value finite; "
        << (r.checksummed ? "meta checksums good)" : "no meta checksums: written before they existed)") << "\n";
    return true;
  }
  out << "checkpoint " << checkpoint.string() << ": DAMAGED (" << r.problems.size() << " problem(s))\n";
  for (const auto& p : r.problems) out << "  " << p << "\n";
  return false;
}

}  // namespace

int verify_checkpoint_path(const std::string& path, std::ostream& out) {
  const std::vector<fs::path> checkpoints = checkpoints_at(path);
  bool good = true;
  for (const fs::path& c : checkpoints) good = report(c, out) && good;
  if (fs::exists(fs::path(path) / "latest")) {
    try {
      out << "latest: " << ckpt::latest(path)->filename().string() << "\n";
    } catch (const Error& e) {
      out << "latest: " << e.message() << "\n";
      good = false;
    }
  }
  return good ? kExitOk : kExitCheckpointDamaged;
}

}  // namespace r1
