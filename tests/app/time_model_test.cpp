// The time model's arithmetic on hand-computed cases: compute at the calibrated rate, the optimizer's
// bytes, TP and EP volumes over the right links, each schedule's bubble; machines from presets and site
// files, bad ones named.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "app/time_model.hpp"
#include "core/error.hpp"
#include "support/tiny_model.hpp"
#include "train/pipeline_schedule.hpp"

namespace r1 {
namespace {

ModelConfig model() {
  return test::tiny_model({.vocab_size = 16, .dim = 8, .dense_inter_dim = 12, .moe_inter_dim = 4, .kv_lora_rank = 4,
                           .qk_nope_head_dim = 2, .qk_rope_head_dim = 2, .v_head_dim = 2});
}

TrainSettings settings(std::int64_t micro_batches) {
  TrainSettings s;
  s.compute_bytes = 2, s.compute_copy = true, s.moment_bytes = 4, s.zero1 = true;
  s.micro_batch = 2, s.seq_len = 4, s.micro_batches = micro_batches;
  return s;
}

// A machine with round numbers: 1 TFLOP/s BF16 (2 FP8), 1 TB/s HBM, 100 GB/s NVLink, 10 GB/s network.
Machine round_machine() {
  Machine m;
  m.name = "round";
  m.peak_bf16 = 1e12, m.peak_fp8 = 2e12, m.hbm = 1e12, m.nvlink = 100e9, m.network = 10e9, m.gpus_per_node = 4;
  m.compute_eff = 0.5, m.memory_eff = 0.5, m.comm_eff = 0.5;
  return m;
}

TEST(TimeModel, OneGpuIsComputePlusOptimizer) {
  const ModelConfig c = model();
  const parallel::Layout l{.world = 1, .tensor = 1, .pipeline = 1, .data = 1, .expert = 1};
  const TrainSettings s = settings(3);
  const MemoryPlan p = plan_stage_memory(c, l, s, 0);
  const StepTime t = predict_step(c, l, s, p, round_machine(), Schedule::one_f_one_b, false);
  const double compute = 3 * 8 * train_flops_per_token(c, 4) / 0.5e12;  // 3 micro-batches of 8 tokens
  EXPECT_NEAR(t.forward, compute / 3, 1e-15);
  EXPECT_NEAR(t.backward, 2 * compute / 3, 1e-15);
  // Global norm 4 B per parameter, then gradient 4 + master 8 + moments 16 + bf16 copy 2 per parameter.
  EXPECT_NEAR(t.optimizer, p.params() * (4 + 30) / 0.5e12, 1e-15);
  EXPECT_EQ(t.tp + t.ep + t.pp + t.bubble + t.dp, 0);
  EXPECT_NEAR(t.step, t.forward + t.backward + t.optimizer, 1e-15);
  EXPECT_NEAR(t.tokens_per_s_per_gpu, 24 / t.step, 1e-9);
  // FP8 halves the GEMM part only.
  const StepTime f = predict_step(c, l, s, p, round_machine(), Schedule::one_f_one_b, true);
  const double gemm = 6 * count_params(c).activated, attention = train_flops_per_token(c, 4) - gemm;
  EXPECT_NEAR(f.forward + f.backward, 24 * (attention + gemm / 2) / 0.5e12, 1e-15);
}

// [train] precision = fp8: the FP8 prediction is the report's step line, no longer a what-if only.
TEST(TimeModel, Fp8PrecisionIsThePrimaryLine) {
  const ModelConfig c = model();
  const parallel::Layout l{.world = 1, .tensor = 1, .pipeline = 1, .data = 1, .expert = 1};
  TrainSettings s = settings(3);
  s.fp8 = true;
  const MemoryPlan p = plan_stage_memory(c, l, s, 0);
  const std::vector<std::string> lines = time_report(c, l, s, p, round_machine(), 0);
  const StepTime f = predict_step(c, l, s, p, round_machine(), Schedule::one_f_one_b, true);
  ASSERT_EQ(lines[1].rfind("step (worst stage, 1f1b+fp8): ", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind(numbers_text("%.0f tokens/s per GPU", f.tokens_per_s_per_gpu), 0), 0u) << lines[2];
  for (const std::string& line : lines) EXPECT_EQ(line.find("fp8 are not runnable"), std::string::npos) << line;
}

TEST(TimeModel, EachScheduleHasItsBubble) {
  const ModelConfig c = model();
  const parallel::Layout l{.world = 8, .tensor = 1, .pipeline = 8, .data = 1, .expert = 1};
  TrainSettings s = settings(16);
  // The 2-layer model has no 8-stage split: the parameters (used by DP and AdamW only) of one rank do.
  const MemoryPlan p = plan_stage_memory(c, {.world = 1, .tensor = 1, .pipeline = 1, .data = 1, .expert = 1}, s, 0);
  s.virtual_stages = 2;
  const Machine m = round_machine();
  const StepTime a = predict_step(c, l, s, p, m, Schedule::one_f_one_b, false);
  const double f = a.forward / 16, b = a.backward / 16, unit = f + b + a.pp / 16;
  EXPECT_NEAR(a.pp / 16, 2 * 8 * 8 * 2 / (100e9 * 0.5), 1e-15);  // stages of one GPU: neighbours on NVLink
  EXPECT_NEAR(a.bubble, 7 * unit, 1e-12);
  EXPECT_NEAR(predict_step(c, l, s, p, m, Schedule::interleaved, false).bubble, 3.5 * unit, 1e-12);
  // DualPipe's order with W split off: (8/2 - 1) F of a whole stage, overlapped or not; with W inside B
  // (2 x 8 - 5) F at B = 2F, scaled with F + B.
  EXPECT_NEAR(predict_step(c, l, s, p, m, Schedule::dualpipe_w, false).bubble, 3 * f, 1e-12);
  EXPECT_NEAR(predict_step(c, l, s, p, m, Schedule::dualpipe_overlap, false).bubble, 3 * f, 1e-12);
  EXPECT_NEAR(predict_step(c, l, s, p, m, Schedule::dualpipe, false).bubble, 11 * (f + b) / 3, 1e-12);
  // DualPipeV, two chunks per rank of half the stage's passes each: (2 x 8 - 3) F/2 + 7 B/2.
  EXPECT_NEAR(predict_step(c, l, s, p, m, Schedule::dualpipev, false).bubble, 6.5 * f + 3.5 * b, 1e-12);
  // With W split off: (8 - 1) F/2, the backward's share gone into the cool-down's gaps.
  EXPECT_NEAR(predict_step(c, l, s, p, m, Schedule::dualpipev_w, false).bubble, 3.5 * f, 1e-12);
}

TEST(TimeModel, TensorAndExpertTrafficUseTheirLinks) {
  const ModelConfig c = model();  // 2 layers, 1 of them MoE; top-2 of 4 experts
  const Machine m = round_machine();
  const TrainSettings s = settings(1);
  // TP 2 inside a node: 4 all-reduces per layer of 8 tokens x dim 8 x 2 B, ring factor 1.
  const parallel::Layout tp{.world = 2, .tensor = 2, .pipeline = 1, .data = 1, .expert = 1};
  const StepTime t = predict_step(c, tp, s, plan_stage_memory(c, tp, s, 0), m, Schedule::one_f_one_b, false);
  EXPECT_NEAR(t.tp, 2 * 4 * (8 * 8 * 2) / (100e9 * 0.5), 1e-15);
  // EP 8 over two nodes of 4: each of 8 tokens sends 2 copies, 3/8 of them to this node's other GPUs and
  // 4/8 off the node; 4 all-to-alls of dim x 2 B per copy; the network is the slower link here.
  const parallel::Layout ep{.world = 8, .tensor = 1, .pipeline = 1, .data = 8, .expert = 8};
  const StepTime e = predict_step(c, ep, s, plan_stage_memory(c, ep, s, 0), m, Schedule::one_f_one_b, false);
  const double bytes = 8 * 4 * 2.0;
  EXPECT_NEAR(e.ep_total, std::max(16 * 0.5 * bytes / 10e9, 16 * 3.0 / 8 * bytes / 100e9) / 0.5, 1e-15);
  EXPECT_NEAR(e.ep, e.ep_total, 0);
  // Without a pipeline there are no pairs to hide anything behind.
  EXPECT_NEAR(predict_step(c, ep, s, plan_stage_memory(c, ep, s, 0), m, Schedule::dualpipe_overlap, false).ep, e.ep, 0);
  // PP2 with 8 micro-batches: the paired passes' share of the worst rank's (DualPipeV 22/32, DualPipe 10/16) hides
  // its exchanges up to the compute beside them; dualpipe+overlap always pairs, the other dual schedules with
  // [parallel] overlap_chunk_pairs ([parallel] overlap_expert_comm too: TrainSettings::overlap_pairs).
  const parallel::Layout epp{.world = 16, .tensor = 1, .pipeline = 2, .data = 8, .expert = 8};
  TrainSettings pairs = settings(8);
  const auto hidden = [&](const StepTime& t, double share) {
    return (1 - share) * t.ep_total + share * std::max(0.0, t.ep_total - (t.forward + t.backward));
  };
  const StepTime plain = predict_step(c, epp, pairs, plan_stage_memory(c, epp, pairs, 0), m, Schedule::dualpipev, false);
  EXPECT_NEAR(plain.ep, plain.ep_total, 0);
  const StepTime over = predict_step(c, epp, pairs, plan_stage_memory(c, epp, pairs, 0), m, Schedule::dualpipe_overlap, false);
  EXPECT_NEAR(over.ep, hidden(over, 10.0 / 16), 1e-18);
  EXPECT_LT(over.ep, over.ep_total);
  pairs.overlap_pairs = true;
  for (const auto& [sch, share] : {std::pair{Schedule::dualpipev, 22.0 / 32}, std::pair{Schedule::dualpipev_w, 22.0 / 32},
                                   std::pair{Schedule::dualpipe, 10.0 / 16}, std::pair{Schedule::dualpipe_w, 10.0 / 16}}) {
    EXPECT_DOUBLE_EQ(paired_share(sch, 2, 8), share);
    const StepTime t = predict_step(c, epp, pairs, plan_stage_memory(c, epp, pairs, 0), m, sch, false);
    EXPECT_NEAR(t.ep, hidden(t, share), 1e-18) << static_cast<int>(sch);
  }
  EXPECT_NEAR(predict_step(c, epp, pairs, plan_stage_memory(c, epp, pairs, 0), m, Schedule::one_f_one_b, false).ep,
              plain.ep_total, 1e-18);
}

// paired_share is the pairs' share of the passes that pipeline_program gives the worst rank.
TEST(TimeModel, PairedShareIsTheProgramsOwn) {
  for (int p = 2; p <= 8; ++p)
    for (int m = 2 * p; m < 2 * p + 10; ++m)
      for (const bool dual : {false, true}) {
        if (dual && (p % 2 != 0 || m % 2 != 0)) continue;
        const PipelineSchedule ps = dual ? PipelineSchedule::dualpipe : PipelineSchedule::dualpipev;
        double worst = 1;
        for (int r = 0; r < p; ++r) {
          int paired = 0, passes = 0;
          for (const PipelineStep& st : pipeline_program(ps, p, r, 1, m, false, true)) {
            if (st.op != PipelineStep::Op::compute) continue;
            passes += st.partner ? 2 : 1;
            paired += st.partner ? 2 : 0;
          }
          worst = std::min(worst, static_cast<double>(paired) / passes);
        }
        EXPECT_DOUBLE_EQ(paired_share(dual ? Schedule::dualpipe : Schedule::dualpipev, p, m), worst)
            << (dual ? "dualpipe" : "dualpipev") << " p " << p << " m " << m;
      }
}

TEST(TimeModel, MachinesFromPresetsAndSiteFiles) {
  EXPECT_DOUBLE_EQ(machine_named("h800").nvlink, 200e9);
  EXPECT_DOUBLE_EQ(machine_named("h200").hbm, 4.8e12);
  const std::string bad = [] {
    try {
      machine_named("a100");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(bad.find("--machine a100: not h100, h800, h200 or a site file"), std::string::npos) << bad;
  const auto site = std::filesystem::temp_directory_path() / "r1hpc_time_model_site.env";
  std::ofstream(site) << "R1HPC_GPU=h800\nR1HPC_GPUS_PER_NODE=4  # four per node\nR1HPC_GPU_NETWORK_GBPS=\"25\"\n";
  const Machine m = machine_named(site.string());
  EXPECT_DOUBLE_EQ(m.nvlink, 200e9);
  EXPECT_DOUBLE_EQ(m.network, 25e9);
  EXPECT_EQ(m.gpus_per_node, 4);
  std::ofstream(site) << "R1HPC_GPU_HBM_GBPS=fast\n";
  try {
    machine_named(site.string());
    ADD_FAILURE() << "a bad site value was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(site.string() + ": R1HPC_GPU_HBM_GBPS=fast is not a positive number"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove(site);
}

}  // namespace
}  // namespace r1
