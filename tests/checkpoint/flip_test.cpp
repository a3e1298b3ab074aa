// Damaged checkpoint files never crash the process and never load as a different model: seeded
// single-byte flips of a real index.h5 and shard each either load identically (a flip in unused space)
// or are an r1::Error naming the file; a crash of the HDF5 library happens in the checking child only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <random>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/isolate.hpp"
#include "checkpoint/verify.hpp"
#include "core/error.hpp"

namespace fs = std::filesystem;
using namespace r1;
using namespace r1::ckpt;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1hpc_flip_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

// What a load yields: every meta field and every tensor's bytes.
struct Loaded {
  Meta meta;
  std::vector<TensorInfo> infos;
  std::vector<std::string> bytes;
};

Loaded load_all(const fs::path& checkpoint) {
  Loaded l;
  l.meta = read_meta(checkpoint);
  l.infos = list_tensors(checkpoint);
  std::vector<Slice> wanted;
  for (const TensorInfo& t : l.infos)
    wanted.push_back({t.name, t.shape, std::vector<std::int64_t>(static_cast<std::size_t>(t.shape.rank()), 0),
                      Tensor::host_zeros(t.shape, t.dtype)});
  load(checkpoint, wanted);
  for (const Slice& s : wanted) l.bytes.emplace_back(static_cast<const char*>(s.data.raw()), s.data.nbytes());
  return l;
}

bool same(const Loaded& a, const Loaded& b) {
  auto meta_text = [](const Meta& m) {
    return nlohmann::json{{"v", m.format_version}, {"stage", m.stage}, {"step", m.step}, {"tokens", m.tokens}, {"deck", m.deck},
                          {"parent", m.parent}, {"layout", m.layout}, {"rng", m.rng_state}, {"data", m.data_state},
                          {"opt", m.optimizer_state}, {"writers", m.writers}}.dump();
  };
  if (meta_text(a.meta) != meta_text(b.meta) || a.bytes != b.bytes || a.infos.size() != b.infos.size()) return false;
  for (std::size_t i = 0; i < a.infos.size(); ++i)
    if (a.infos[i].name != b.infos[i].name || !(a.infos[i].shape == b.infos[i].shape) || a.infos[i].dtype != b.infos[i].dtype)
      return false;
  return true;
}

// A checkpoint like the trainer's: two writers' slices of one weight (written as two slices by one
// rank), moments, a router bias buffer, a bf16 tensor, and meta text with a deck and states.
fs::path write_checkpoint(const fs::path& dir) {
  Tensor w0 = Tensor::host({3, 5}, DType::f32), w1 = Tensor::host({2, 5}, DType::f32), m = Tensor::host({5, 5}, DType::f32);
  Tensor bias = Tensor::host({4}, DType::f32), e = Tensor::host({6, 3}, DType::bf16);
  for (std::int64_t i = 0; i < 15; ++i) w0.data<float>()[i] = 0.5f + static_cast<float>(i);
  for (std::int64_t i = 0; i < 10; ++i) w1.data<float>()[i] = -2.0f * static_cast<float>(i);
  for (std::int64_t i = 0; i < 25; ++i) m.data<float>()[i] = 1e-3f * static_cast<float>(i);
  for (std::int64_t i = 0; i < 4; ++i) bias.data<float>()[i] = 0.125f * static_cast<float>(i);
  for (std::int64_t i = 0; i < 18; ++i) static_cast<std::uint16_t*>(e.raw())[i] = static_cast<std::uint16_t>(0x3f80 + i);
  Meta meta;
  meta.stage = "pretrain";
  meta.step = 7;
  meta.tokens = 7168;
  meta.deck = "[model]\ndim = 64\nlayers = 2\n[optim]\nlr = 0.0003\n";
  meta.layout = {{"data", 1}, {"tensor", 1}};
  meta.data_state = {{"tokens_consumed", 7168}, {"epoch", 0}};
  meta.optimizer_state = {{"steps_taken", 7}};
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  c.save(meta, {{"model/layers.0.w", {5, 5}, {0, 0}, w0},
                {"model/layers.0.w", {5, 5}, {3, 0}, w1},
                {"optim/exp_avg/layers.0.w", {5, 5}, {0, 0}, m},
                {"model/layers.0.moe.router_bias", {4}, {0}, bias},
                {"model/embed", {6, 3}, {0, 0}, e}});
  return step_dir(dir, 7);
}

void flip_byte(const fs::path& file, std::mt19937_64& rng) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  const auto size = static_cast<std::uint64_t>(fs::file_size(file));
  const auto at = static_cast<std::streamoff>(rng() % size);
  char c = 0;
  f.seekg(at);
  f.read(&c, 1);
  c = static_cast<char>(c ^ static_cast<char>(1 + rng() % 255));
  f.seekp(at);
  f.write(&c, 1);
}

struct Tally {
  int identical = 0, refused = 0;
};

// Flips one byte of `file_name` in a copy of `original`, then loads the copy. `strict`: a load that
// succeeds must be identical to `reference` (files with checksums); otherwise only "no crash" is asked.
void trial(const fs::path& original, const Loaded& reference, const fs::path& trial_dir, const std::string& file_name,
           std::mt19937_64& rng, bool strict, Tally& tally) {
  fs::create_directories(trial_dir.parent_path());
  fs::copy(original, trial_dir, fs::copy_options::recursive);
  const fs::path file = trial_dir / file_name;
  flip_byte(file, rng);
  try {
    const Loaded got = load_all(trial_dir);
    EXPECT_TRUE(!strict || same(got, reference)) << "a flip in " << file << " loaded as a DIFFERENT checkpoint";
    ++tally.identical;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << "the error does not name " << file << ": " << e.what();
    ++tally.refused;
  }
  fs::remove_all(trial_dir.parent_path());
}

}  // namespace

TEST(CheckpointIsolation, ACrashInTheCheckingChildIsReportedAndTheCallerGoesOn) {
  const Isolated r = run_isolated([](const Progress& progress) -> std::string {
    progress("/some/shard-00003.h5");
    std::raise(SIGSEGV);
    return "unreachable";
  }, 30);
  EXPECT_EQ(r.outcome, Isolated::Outcome::crashed);
  EXPECT_EQ(r.progress, "/some/shard-00003.h5");
  EXPECT_NE(r.text.find("signal 11"), std::string::npos) << r.text;
  const Isolated ok = run_isolated([](const Progress&) { return std::string("fine"); }, 30);
  EXPECT_EQ(ok.outcome, Isolated::Outcome::returned);
  EXPECT_EQ(ok.text, "fine");
}

TEST(CheckpointFlips, TwoHundredSingleByteFlipsLoadIdenticallyOrNameTheFile) {
  const fs::path dir = fresh_dir("v110");
  const fs::path original = write_checkpoint(dir);
  const Loaded reference = load_all(original);
  std::mt19937_64 rng(20);
  Tally index, shard;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    const bool on_index = i % 2 == 0;
    trial(original, reference, dir / detail::concat("t", i) / "step-00000007", on_index ? "index.h5" : "shard-00000.h5", rng,
          true, on_index ? index : shard);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("200 flips in %.1f s: index.h5 %d identical, %d refused by name; shard %d identical, %d refused by name\n", seconds,
              index.identical, index.refused, shard.identical, shard.refused);
  EXPECT_GT(index.refused, 0);
  EXPECT_GT(shard.refused, 0);
  fs::remove_all(dir);
}

// Checkpoints written before the 1.10 format have no metadata checksums: a flip may load differently
// (that is what the new format fixes), but it must never take the process down.
TEST(CheckpointFlips, FlipsOfAnEarliestFormatIndexNeverCrashTheProcess) {
  const fs::path original = fs::path(R1HPC_SOURCE_DIR) / "tests/fixtures/ckpt_v1_earliest/step-00000003";
  const Loaded reference = load_all(original);
  const fs::path dir = fresh_dir("earliest");
  std::mt19937_64 rng(21);
  Tally tally;
  for (int i = 0; i < 100; ++i)
    trial(original, reference, dir / detail::concat("t", i) / "step-00000003", i % 2 ? "index.h5" : "shard-00000.h5", rng, false,
          tally);
  std::printf("100 flips of an earliest-format checkpoint: %d loaded, %d refused by name, no crash\n", tally.identical, tally.refused);
  fs::remove_all(dir);
}
