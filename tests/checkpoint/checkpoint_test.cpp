// Checkpoints on one rank: the trainer's state round trip, metadata, retention, asynchronous saves, and
// every way a damaged checkpoint is refused with the tensor and the file named.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <limits>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/train_state.hpp"
#include "core/file_io.hpp"

namespace fs = std::filesystem;
using namespace r1;
using namespace r1::ckpt;

namespace {

Meta at_step(std::int64_t step) {
  Meta m;
  m.step = step;
  return m;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1hpc_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

Tensor iota(const Shape& shape, float base) {
  Tensor t = Tensor::host(shape, DType::f32);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = base + 0.25f * static_cast<float>(i);
  return t;
}

Slice whole(const std::string& name, const Tensor& t) {
  return Slice{name, t.shape(), std::vector<std::int64_t>(static_cast<std::size_t>(t.rank()), 0), t};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A small model's parameters (one buffer) with AdamW moments after two steps.
struct TrainState {
  ParamStore params{kernels::Context::cpu(), DType::f32};
  std::unique_ptr<GradReducer> grads;
  std::unique_ptr<AdamW> opt;
  explicit TrainState(std::uint64_t seed, int steps) {
    params.add("embed", {6, 4}, Init::normal, false);
    params.add("layers.0.attn.wq", {4, 4}, Init::normal);
    params.add("layers.0.norm", {4}, Init::ones, false);
    params.add("layers.0.moe.router_bias", {3}, Init::zeros, false, /*trainable=*/false);
    params.initialize(seed, 0.02);
    params.get("layers.0.moe.router_bias").master.data<float>()[1] = 0.125f;
    grads = std::make_unique<GradReducer>(params, ReplicaGroups{});
    opt = std::make_unique<AdamW>(params, AdamWConfig{}, *grads);
    for (int s = 0; s < steps; ++s) {
      for (const auto& p : params.all())
        if (p->trainable)
          for (std::int64_t i = 0; i < p->grad.numel(); ++i) p->grad.data<float>()[i] = 0.01f * static_cast<float>(i + s) - 0.03f;
      opt->step(1e-3);
    }
  }
};

Checkpointer make(const fs::path& dir, std::int64_t keep_last = 0, bool async = false) {
  return Checkpointer(dir, MPI_COMM_WORLD, keep_last, async);
}

// Writes step 1 with tensor model/w = iota([8, 6]); returns the step directory.
fs::path write_simple(const fs::path& dir) {
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  Meta m;
  m.step = 1;
  return c.save(m, {whole("model/w", iota({8, 6}, 1.0f)), whole("model/b", iota({5}, -3.0f))}).path;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return std::string(error_kind_name(e.kind())) + ": " + e.message();
  }
  return "no error";
}

}  // namespace

TEST(CheckpointTrainState, FullResumeIsBitIdentical) {
  const fs::path dir = fresh_dir("roundtrip");
  TrainState a(7, 2);
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  Meta meta;
  meta.stage = "pretrain";
  meta.step = 2;
  save_train_state(c, meta, a.params, *a.opt);

  TrainState b(99, 0);  // other weights, no moments yet
  const Meta loaded = load_train_state(*latest(dir), LoadMode::full, b.params, b.opt.get());
  EXPECT_EQ(loaded.step, 2);
  EXPECT_EQ(b.opt->steps_taken(), 2);
  for (std::size_t i = 0; i < a.params.all().size(); ++i) {
    const Param& p = *a.params.all()[i];
    EXPECT_TRUE(same_bits(p.master, b.params.all()[i]->master)) << p.name;
    if (!p.trainable) continue;
    EXPECT_TRUE(same_bits(a.opt->exp_avg()[i], b.opt->exp_avg()[i])) << p.name;
    EXPECT_TRUE(same_bits(a.opt->exp_avg_sq()[i], b.opt->exp_avg_sq()[i])) << p.name;
  }
  // The same next step from both: the resumed run continues exactly.
  TrainState* both[] = {&a, &b};
  for (TrainState* s : both) {
    for (const auto& p : s->params.all())
      if (p->trainable)
        for (std::int64_t i = 0; i < p->grad.numel(); ++i) p->grad.data<float>()[i] = 0.02f * static_cast<float>(i) - 0.05f;
    s->opt->step(1e-3);
  }
  for (std::size_t i = 0; i < a.params.all().size(); ++i)
    EXPECT_TRUE(same_bits(a.params.all()[i]->master, b.params.all()[i]->master)) << a.params.all()[i]->name;
}

TEST(CheckpointTrainState, WeightsOnlyLeavesTheOptimizerFresh) {
  const fs::path dir = fresh_dir("weights");
  TrainState a(7, 2);
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  save_train_state(c, at_step(2), a.params, *a.opt);
  TrainState b(99, 0);
  load_train_state(step_dir(dir, 2), LoadMode::weights, b.params, b.opt.get());
  EXPECT_EQ(b.opt->steps_taken(), 0);
  EXPECT_TRUE(same_bits(a.params.get("embed").master, b.params.get("embed").master));
  EXPECT_EQ(b.opt->exp_avg()[0].data<float>()[0], 0.0f);
}

TEST(CheckpointTrainState, AMissingParameterIsNamed) {
  const fs::path dir = fresh_dir("missing_param");
  TrainState a(7, 1);
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  save_train_state(c, at_step(1), a.params, *a.opt);
  TrainState b(7, 0);
  b.params.add("layers.1.attn.wq", {4, 4}, Init::zeros);
  const std::string e = error_of([&] { load_train_state(step_dir(dir, 1), LoadMode::weights, b.params, nullptr); });
  EXPECT_NE(e.find("model/layers.1.attn.wq is not in"), std::string::npos) << e;
  EXPECT_NE(e.find("index.h5"), std::string::npos) << e;
}

TEST(CheckpointFormat, MetadataRoundTrips) {
  const fs::path dir = fresh_dir("meta");
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  Meta m = at_step(42);
  m.stage = "pretrain";
  m.tokens = 123456789012;
  m.deck = "[run]\nname = x\n";
  m.parent = "/ckpt/a/step-00000010";
  m.layout = {{"data", 1}, {"tensor", 1}};
  m.rng_state = {{"seed", 5}};
  m.data_state = {{"next_sample", 77}};
  c.save(m, {whole("model/w", iota({3, 2}, 0.0f))});
  const Meta r = read_meta(step_dir(dir, 42));
  EXPECT_EQ(r.format_version, kFormatVersion);
  EXPECT_EQ(r.stage, "pretrain");
  EXPECT_EQ(r.step, 42);
  EXPECT_EQ(r.tokens, 123456789012);
  EXPECT_EQ(r.deck, m.deck);
  EXPECT_EQ(r.parent, m.parent);
  EXPECT_EQ(r.layout, m.layout);
  EXPECT_EQ(r.rng_state, m.rng_state);
  EXPECT_EQ(r.data_state, m.data_state);
  EXPECT_EQ(r.writers, std::vector<std::int64_t>{0});
  const auto tensors = list_tensors(step_dir(dir, 42));
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].name, "model/w");
  EXPECT_EQ(tensors[0].shape, (Shape{3, 2}));
}

TEST(CheckpointFormat, StepDirectoryHoldsShardsAndIndexAndLatestNamesIt) {
  const fs::path dir = fresh_dir("layout");
  const fs::path step = write_simple(dir);
  EXPECT_EQ(step, dir / "step-00000001");
  EXPECT_TRUE(fs::exists(step / "index.h5"));
  EXPECT_TRUE(fs::exists(step / "shard-00000.h5"));
  EXPECT_FALSE(fs::exists(dir / "step-00000001.tmp"));
  EXPECT_EQ(read_file((dir / "latest").string()), "step-00000001\n");
  EXPECT_EQ(latest(dir), step);
  EXPECT_EQ(latest(fresh_dir("nothing_yet")), std::nullopt);
}

TEST(CheckpointRetention, KeepsTheLastTwoOfFiveSaves) {
  const fs::path dir = fresh_dir("retention");
  Checkpointer c = make(dir, 2);
  for (int s = 1; s <= 5; ++s) c.save(at_step(s * 10), {whole("model/w", iota({2, 2}, static_cast<float>(s)))});
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-00000040", "step-00000050"}));
}

TEST(CheckpointRetention, NeverDeletesWhatLatestNames) {
  const fs::path dir = fresh_dir("retention_latest");
  Checkpointer c = make(dir, 1);
  c.save(at_step(20), {whole("model/w", iota({2}, 0.0f))});
  c.save(at_step(30), {whole("model/w", iota({2}, 0.0f))});
  // A run restarted from an earlier step: its new checkpoint is older by number than the others.
  c.save(at_step(5), {whole("model/w", iota({2}, 0.0f))});
  EXPECT_EQ(latest(dir), step_dir(dir, 5));
  EXPECT_TRUE(fs::exists(step_dir(dir, 5)));
  EXPECT_TRUE(fs::exists(step_dir(dir, 30)));
  EXPECT_FALSE(fs::exists(step_dir(dir, 20)));
}

TEST(CheckpointRetention, LeftoversOfCrashedSavesGoAtTheNextSave) {
  const fs::path dir = fresh_dir("leftover");
  fs::create_directories(dir / "step-00000007.tmp");
  std::ofstream(dir / "step-00000007.tmp" / "shard-00000.h5") << "half";
  fs::create_directories(dir / "notes");
  write_simple(dir);
  EXPECT_FALSE(fs::exists(dir / "step-00000007.tmp"));
  EXPECT_TRUE(fs::exists(dir / "notes"));  // not ours: left alone
}

TEST(CheckpointAsync, WritesAHostCopyInTheBackgroundAndCommitsAtFinish) {
  const fs::path dir = fresh_dir("async");
  Checkpointer c = make(dir, 0, true);
  Tensor w = iota({64, 32}, 2.0f);
  const Tensor expect = iota({64, 32}, 2.0f);
  const SaveReport r = c.save(at_step(3), {whole("model/w", w)});
  EXPECT_TRUE(r.async);
  EXPECT_GE(r.blocking_s, 0.0);
  EXPECT_TRUE(c.in_flight());
  for (std::int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = -1.0f;  // the next step overwrites the weights
  EXPECT_FALSE(fs::exists(dir / "latest"));  // not committed before finish (or the next save)
  const auto done = c.finish();
  ASSERT_TRUE(done.has_value());
  EXPECT_GT(done->write_s, 0.0);
  EXPECT_EQ(done->bytes, 64 * 32 * 4);
  EXPECT_FALSE(c.in_flight());
  EXPECT_EQ(latest(dir), step_dir(dir, 3));
  Tensor back = Tensor::host({64, 32}, DType::f32);
  load(step_dir(dir, 3), {whole("model/w", back)});
  EXPECT_TRUE(same_bits(back, expect));
  EXPECT_EQ(c.finish(), std::nullopt);
}

TEST(CheckpointAsync, TheNextSaveCommitsThePreviousOne) {
  const fs::path dir = fresh_dir("async_next");
  Checkpointer c = make(dir, 0, true);
  c.save(at_step(1), {whole("model/w", iota({4}, 1.0f))});
  c.save(at_step(2), {whole("model/w", iota({4}, 2.0f))});
  EXPECT_EQ(latest(dir), step_dir(dir, 1));
  c.finish();
  EXPECT_EQ(latest(dir), step_dir(dir, 2));
}

TEST(CheckpointSave, SlicesThatDoNotCoverATensorAreRefusedByName) {
  const fs::path dir = fresh_dir("coverage");
  Checkpointer c = make(dir);
  Tensor half = iota({2, 3}, 0.0f);
  const std::string e = error_of([&] { c.save(at_step(1), {Slice{"model/w", {4, 3}, {0, 0}, half}}); });
  EXPECT_NE(e.find("tensor model/w: the writers' slices cover 6 of its 12 elements"), std::string::npos) << e;
  const std::string o = error_of([&] {
    c.save(at_step(1), {Slice{"model/w", {3, 3}, {0, 0}, half}, Slice{"model/w", {3, 3}, {1, 0}, half}});
  });
  EXPECT_NE(o.find("tensor model/w: the slices of ranks 0 and 0 overlap"), std::string::npos) << o;
  const std::string b = error_of([&] { c.save(at_step(1), {Slice{"model/w", {2, 3}, {1, 0}, half}}); });
  EXPECT_NE(b.find("tensor model/w: slice [2, 3] at offset [1,0] lies outside [2, 3]"), std::string::npos) << b;
  EXPECT_FALSE(fs::exists(dir / "latest"));
}

TEST(CheckpointLoad, ShapeAndDtypeMismatchesNameTheTensorAndFile) {
  const fs::path step = write_simple(fresh_dir("mismatch"));
  Tensor wrong = Tensor::host({6, 8}, DType::f32);
  const std::string s = error_of([&] { load(step, {whole("model/w", wrong)}); });
  EXPECT_NE(s.find("tensor model/w has shape [8, 6] in " + (step / "index.h5").string() + ", this run expects [6, 8]"),
            std::string::npos) << s;
  Tensor i32 = Tensor::host({8, 6}, DType::i32);
  const std::string d = error_of([&] { load(step, {whole("model/w", i32)}); });
  EXPECT_NE(d.find("tensor model/w is f32 in"), std::string::npos) << d;
  const std::string m = error_of([&] { load(step, {whole("model/nope", wrong)}); });
  EXPECT_NE(m.find("tensor model/nope is not in " + (step / "index.h5").string()), std::string::npos) << m;
}

TEST(CheckpointLoad, AFlippedByteInAShardChunkIsDetectedWithTensorAndShardNamed) {
  const fs::path step = write_simple(fresh_dir("flip"));
  const fs::path shard = step / "shard-00000.h5";
  haddr_t addr = 0;
  hsize_t size = 0;
  {
    const hid_t f = H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t ds = H5Dopen2(f, "model/w", H5P_DEFAULT);
    hsize_t offset[2];
    unsigned mask = 0;
    const hid_t space = H5Dget_space(ds);
    ASSERT_GE(H5Dget_chunk_info(ds, space, 0, offset, &mask, &addr, &size), 0);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
  }
  ASSERT_EQ(size, 8u * 6u * 4u + 4u);  // the data and its Fletcher32 checksum
  {
    std::fstream io(shard, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(addr + 17));
    char byte = 0;
    io.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x10);
    io.seekp(static_cast<std::streamoff>(addr + 17));
    io.write(&byte, 1);
  }
  Tensor back = Tensor::host({8, 6}, DType::f32);
  const std::string e = error_of([&] { load(step, {whole("model/w", back)}); });
  EXPECT_EQ(e.rfind(std::string(error_kind_name(ErrorKind::io)) + ": ", 0), 0u) << e;
  EXPECT_NE(e.find("tensor model/w: reading shard " + shard.string() + " failed (Fletcher32"), std::string::npos) << e;
  // Other tensors of the same shard still load.
  Tensor b = Tensor::host({5}, DType::f32);
  load(step, {whole("model/b", b)});
  EXPECT_EQ(b.data<float>()[4], -2.0f);
}

TEST(CheckpointLoad, ATruncatedIndexIsRefused) {
  const fs::path step = write_simple(fresh_dir("truncated"));
  const fs::path index = step / "index.h5";
  fs::resize_file(index, fs::file_size(index) / 2);
  Tensor back = Tensor::host({8, 6}, DType::f32);
  const std::string e = error_of([&] { load(step, {whole("model/w", back)}); });
  EXPECT_NE(e.find(std::string(error_kind_name(ErrorKind::io)) + ": checkpoint index " + index.string() + " cannot be opened (truncated or not an HDF5 file)"),
            std::string::npos) << e;
  EXPECT_NE(error_of([&] { read_meta(step); }).find("truncated"), std::string::npos);
}

TEST(CheckpointLoad, AMissingShardIsRefused) {
  const fs::path step = write_simple(fresh_dir("noshard"));
  fs::remove(step / "shard-00000.h5");
  Tensor back = Tensor::host({8, 6}, DType::f32);
  const std::string e = error_of([&] { load(step, {whole("model/w", back)}); });
  EXPECT_NE(e.find("tensor model/w: its shard " + (step / "shard-00000.h5").string() + " is missing"), std::string::npos) << e;
}

TEST(CheckpointLoad, LatestNamingAMissingDirectoryIsAClearError) {
  const fs::path dir = fresh_dir("dangling");
  write_simple(dir);
  write_file_atomic((dir / "latest").string(), "step-00000099\n");
  const std::string e = error_of([&] { latest(dir); });
  EXPECT_NE(e.find("names step-00000099, but " + (dir / "step-00000099").string() + " does not exist"), std::string::npos) << e;
  const std::string n = error_of([&] { read_meta(dir / "step-00000123"); });
  EXPECT_NE(n.find("checkpoint " + (dir / "step-00000123").string() + " does not exist"), std::string::npos) << n;
}

TEST(CheckpointFormat, FilesAreWrittenInHdf5s110FormatWithMetaChecksums) {
  const fs::path step = write_simple(fresh_dir("libver"));
  for (const char* name : {"index.h5", "shard-00000.h5"}) {
    const hid_t f = H5Fopen((step / name).c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0) << name;
    H5F_info2_t info{};
    ASSERT_GE(H5Fget_info2(f, &info), 0);
    EXPECT_GE(info.super.version, 2u) << name << ": superblock of the earliest format (no checksums)";
    if (std::string(name) == "index.h5") {
      EXPECT_GT(H5Aexists_by_name(f, "meta", "checksums", H5P_DEFAULT), 0);
    }
    H5Fclose(f);
  }
}

TEST(CheckpointFormat, ACheckpointOfTheEarliestFormatStillLoads) {
  const fs::path step = fs::path(R1HPC_SOURCE_DIR) / "tests/fixtures/ckpt_v1_earliest/step-00000003";
  EXPECT_EQ(read_meta(step).step, 3);
  Tensor w = Tensor::host({8, 6}, DType::f32);
  load(step, {whole("model/layers.0.w", w)});
  for (std::int64_t i = 0; i < 8; ++i)
    for (std::int64_t j = 0; j < 6; ++j) EXPECT_EQ(w.data<float>()[i * 6 + j], static_cast<float>(3000 + i * 10 + j));
}

// Rewrites the first occurrence of `from` in `file` (same length): a flipped digit in stored meta text.
void replace_in_file(const fs::path& file, const std::string& from, const std::string& to) {
  std::string bytes = read_file(file.string());
  const std::size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << file;
  bytes.replace(at, from.size(), to);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(CheckpointIntegrity, AFlippedDigitOfTheOptimizerStateIsAnErrorNamingFileAndField) {
  const fs::path dir = fresh_dir("optstate");
  TrainState a(7, 2);
  Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
  save_train_state(c, at_step(2), a.params, *a.opt);
  replace_in_file(step_dir(dir, 2) / "index.h5", "\"steps_taken\":2", "\"steps_taken\":3");
  TrainState b(99, 0);
  const std::string e = error_of([&] { load_train_state(step_dir(dir, 2), LoadMode::full, b.params, b.opt.get()); });
  EXPECT_NE(e.find((step_dir(dir, 2) / "index.h5").string() + ": meta field 'optimizer_state' does not match its checksum"),
            std::string::npos) << e;
  EXPECT_EQ(b.opt->steps_taken(), 0);
}

TEST(CheckpointIntegrity, ANonFiniteTensorFailsTheSaveByNameAndNothingIsCommitted) {
  for (const bool async : {false, true}) {
    const fs::path dir = fresh_dir(async ? "nan_async" : "nan_sync");
    Checkpointer c = make(dir, 0, async);
    c.save(at_step(1), {whole("model/w", iota({4, 3}, 0.0f))});
    c.finish();
    Tensor moment = iota({4, 3}, 1.0f);
    moment.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
    Tensor bias = Tensor::host_zeros({3}, DType::bf16);
    static_cast<std::uint16_t*>(bias.raw())[2] = 0x7f80;  // bf16 +Inf
    const std::string n = error_of([&] {
      c.save(at_step(2), {whole("model/w", iota({4, 3}, 0.0f)), whole("optim/exp_avg/w", moment)});
    });
    EXPECT_EQ(n.rfind("diverged: checkpoint save of step 2 to " + dir.string() + " failed on rank 0: tensor optim/exp_avg/w holds NaN (element 7 ", 0), 0u) << n;
    const std::string i = error_of([&] { c.save(at_step(2), {whole("model/layers.0.moe.router_bias", bias)}); });
    EXPECT_NE(i.find("tensor model/layers.0.moe.router_bias holds Inf (element 2 "), std::string::npos) << i;
    EXPECT_EQ(read_file((dir / "latest").string()), "step-00000001\n");
    EXPECT_FALSE(fs::exists(step_dir(dir, 2)));
    EXPECT_FALSE(fs::exists(dir / "step-00000002.tmp"));
  }
}
