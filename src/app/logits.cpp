// r1hpc-logits: the logits a checkpoint's model gives for a batch of token ids, as f32 in an HDF5 file, so
// scripts can compare r1hpc with another implementation of the same weights (tools/hf_roundtrip.py against
// transformers after export_hf). The model is the checkpoint's own (the deck that wrote it), as in export_hf.
//   r1hpc-logits [--cpu] [--precision fp32|bf16] CHECKPOINT IDS.h5 OUT.h5
// CHECKPOINT: a step directory, or a checkpoints directory (its `latest`). IDS.h5: dataset `input_ids`, integer
// [B, S] (or [S]: one row). OUT.h5 (replaced): `input_ids` i32 [B, S], `logits` f32 [B, S, V] (row b, position s:
// the next-token logits after ids[b, 0..s]) and root attributes checkpoint, stage, step, model, device, precision.
// Runs on cuda:0 when a GPU is visible (--cpu: on the CPU), in f32 unless --precision bf16 (the weights' compute
// copies in bf16, as training and generation use them).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/h5.hpp"
#include "checkpoint/train_state.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "deck/deck.hpp"
#include "kernels/elementwise.hpp"
#include "model/model.hpp"

using namespace r1;
namespace fs = std::filesystem;
namespace h5 = r1::ckpt::h5;

namespace {

fs::path resolve_checkpoint(const fs::path& p) {
  if (fs::exists(p / "index.h5")) return p;
  if (auto l = ckpt::latest(p)) return *l;
  R1_FAIL(user, p.string(), " is neither a checkpoint (no index.h5) nor a checkpoints directory with a `latest` checkpoint");
}

TokenBatch read_ids(const fs::path& file) {
  h5::quiet();
  h5::Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) R1_FAIL(user, file.string(), ": cannot be opened as an HDF5 file: ", h5::error_text());
  h5::Id ds(H5Dopen2(f.get(), "input_ids", H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) R1_FAIL(user, file.string(), ": no dataset input_ids");
  h5::Id type(H5Dget_type(ds.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER) R1_FAIL(user, file.string(), ": input_ids must be integers");
  h5::Id space(H5Dget_space(ds.get()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank != 1 && rank != 2) R1_FAIL(user, file.string(), ": input_ids must be [B, S] or [S], not of rank ", rank);
  hsize_t dims[2] = {1, 1};
  H5Sget_simple_extent_dims(space.get(), rank == 2 ? dims : dims + 1, nullptr);
  if (dims[0] == 0 || dims[1] == 0) R1_FAIL(user, file.string(), ": input_ids is empty");
  TokenBatch tb;
  tb.batch = static_cast<std::int64_t>(dims[0]);
  tb.seq = static_cast<std::int64_t>(dims[1]);
  tb.ids.resize(static_cast<std::size_t>(tb.batch * tb.seq));
  if (H5Dread(ds.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tb.ids.data()) < 0)
    R1_FAIL(user, file.string(), ": input_ids: unreadable as 32-bit integers: ", h5::error_text());
  tb.targets.assign(tb.ids.size(), -1);  // logits only: no loss
  return tb;
}

void write_dataset(hid_t file, const char* name, const std::vector<hsize_t>& dims, hid_t file_type, hid_t mem_type,
                   const void* data, const fs::path& path) {
  h5::Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  h5::Id ds(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!ds.ok() || H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    R1_FAIL(io, path.string(), ": cannot write ", name, ": ", h5::error_text());
}

int run(const fs::path& checkpoint_arg, const fs::path& ids_file, const fs::path& out, bool force_cpu, DType precision) {
  const fs::path checkpoint = resolve_checkpoint(checkpoint_arg);
  const ckpt::Meta meta = ckpt::read_meta(checkpoint);
  const ModelConfig cfg = Deck::model_of(meta.deck, (checkpoint / "index.h5").string()).config().model;
  TokenBatch tb = read_ids(ids_file);

  const bool on_gpu = !force_cpu && kernels::Context::cuda_device_count() > 0;
  kernels::Context ctx = kernels::Context::cpu();
#if defined(R1HPC_HAVE_CUDA)
  if (on_gpu) ctx = kernels::Context::cuda(0);
#endif
  ParamStore params(ctx, precision);
  const Model model(cfg, params);
  ckpt::load_train_state(checkpoint, ckpt::LoadMode::weights, params, nullptr);
  const DeviceBatch db = model.upload(tb);
  ForwardResult r;
  const auto saved = model.forward(db, r);
  const Tensor& logits = Model::logits(*saved);
  Tensor f32 = ctx.empty(logits.shape(), DType::f32);
  kernels::cast(ctx, logits, f32);
  Tensor host = Tensor::host(logits.shape(), DType::f32);
  copy(host, f32);

  const std::string device = on_gpu ? "cuda:0" : "cpu";
  h5::Id f(H5Fcreate(out.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) R1_FAIL(io, out.string(), ": cannot be created: ", h5::error_text());
  const auto B = static_cast<hsize_t>(tb.batch), S = static_cast<hsize_t>(tb.seq), V = static_cast<hsize_t>(cfg.vocab_size);
  write_dataset(f.get(), "input_ids", {B, S}, H5T_STD_I32LE, H5T_NATIVE_INT32, tb.ids.data(), out);
  write_dataset(f.get(), "logits", {B, S, V}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, host.raw(), out);
  h5::write_string_attr(f.get(), "checkpoint", fs::absolute(checkpoint).lexically_normal().string());
  h5::write_string_attr(f.get(), "stage", meta.stage);
  h5::write_i64_attr(f.get(), "step", {meta.step});
  h5::write_string_attr(f.get(), "model", describe_model(cfg));
  h5::write_string_attr(f.get(), "device", device);
  h5::write_string_attr(f.get(), "precision", precision == DType::bf16 ? "bf16" : "fp32");
  if (!f.close()) R1_FAIL(io, out.string(), ": closing failed: ", h5::error_text());
  log_info("r1hpc-logits: ", describe_model(cfg), " of ", checkpoint.string(), " (stage ", meta.stage, ", step ", meta.step,
           ") on ", device, " in ", precision == DType::bf16 ? "bf16" : "fp32", ": ", tb.batch, " x ", tb.seq, " ids -> ",
           out.string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: %s [--cpu] [--precision fp32|bf16] CHECKPOINT IDS.h5 OUT.h5\n";
  bool force_cpu = false;
  DType precision = DType::f32;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cpu") {
      force_cpu = true;
    } else if (const std::string v = i + 1 < argc ? argv[i + 1] : ""; a == "--precision" && (v == "fp32" || v == "bf16")) {
      precision = v == "bf16" ? DType::bf16 : DType::f32;
      ++i;
    } else if (!a.starts_with("-")) {
      paths.push_back(a);
    } else {
      std::fprintf(stderr, usage, argv[0]);
      return 2;
    }
  }
  if (paths.size() != 3) {
    std::fprintf(stderr, usage, argv[0]);
    return 2;
  }
  try {
    return run(paths[0], paths[1], paths[2], force_cpu, precision);
  } catch (const Error& e) {
    std::fprintf(stderr, "r1hpc-logits: %s: %s\n", error_kind_name(e.kind()), e.what());
    return e.kind() == ErrorKind::user ? 2 : 1;
  }
}
