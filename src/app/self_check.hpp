// The embedded default job: checks every compute backend this build and node have against the CPU
// reference (GEMM in f32 and bf16, axpy, reductions) and reports errors and throughput.
#pragma once

namespace r1 {

// Runs on every rank; returns true when every check on every rank passed. Rank 0 prints the report.
bool run_self_check(int rank, int world_size);

}  // namespace r1
