// cuDNN fused attention through the backend graph API (cudnn_graph.h): the decomposed operation graphs of
// matmul, pointwise, reduction and reshape nodes that cuDNN's runtime-fusion flash-attention engines recognise
// on Hopper (the graphs cudnn-frontend's composite sdpa / sdpa_backward nodes lower to before cuDNN 9.21),
// built once per shape and device, executed on the context's stream.
#include "kernels/cuda/cudnn_attention.hpp"

#include <cuda_runtime.h>
#include <cudnn_graph.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "core/log.hpp"
#include "kernels/cuda/resources.hpp"

namespace r1::kernels::cuda {

namespace {

// A cuDNN call that failed while a plan was being built: the shape is then unsupported, with this message.
struct CudnnFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string status_text(cudnnStatus_t s) {
  std::array<char, 1024> last{};
  cudnnGetLastErrorString(last.data(), last.size());
  return std::string(cudnnGetErrorString(s)) + (last[0] ? std::string(" (") + last.data() + ")" : std::string());
}

void check(cudnnStatus_t s, const char* call, const std::string& where) {
  if (s != CUDNN_STATUS_SUCCESS) throw CudnnFailure(std::string(call) + " failed for " + where + ": " + status_text(s));
}

// Owns one backend descriptor.
class Desc {
 public:
  Desc(cudnnBackendDescriptorType_t type, const std::string& where) {
    check(cudnnBackendCreateDescriptor(type, &h_), "cudnnBackendCreateDescriptor", where);
  }
  ~Desc() {
    if (h_) cudnnBackendDestroyDescriptor(h_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return h_; }

 private:
  cudnnBackendDescriptor_t h_ = nullptr;
};

// cudnnBackendSetAttribute naming the attribute in its error.
#define R1_CUDNN_SET(desc, attr, type, n, values, where)                                                        \
  check(cudnnBackendSetAttribute((desc), (attr), (type), static_cast<std::int64_t>(n), (values)),              \
        "cudnnBackendSetAttribute(" #attr ")", (where))

// Tensor uids of the variant pack; virtual tensors count up from kFirstVirtual.
enum Uid : std::int64_t {
  kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV,
  kScale, kNegInf, kOne,   // by-value f32 scalars
  kSoftmaxSum, kDQAccum,   // f32 intermediates the backward keeps in our workspace
  kFirstVirtual = 100,
};

// Dims and strides of a rank-4 tensor in cuDNN's [batch, heads, rows, cols] order.
struct Layout {
  std::array<std::int64_t, 4> dim, stride;
};
Layout packed(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t d) {
  return {{a, b, c, d}, {b * c * d, c * d, d, 1}};
}
// Our [B, S, heads, D] tensors seen as [B, heads, S, D] (no copy).
Layout bshd(std::int64_t B, std::int64_t S, std::int64_t heads, std::int64_t D) {
  return {{B, heads, S, D}, {S * heads * D, D, heads * D, 1}};
}
Layout transposed(Layout l) {
  std::swap(l.dim[2], l.dim[3]);
  std::swap(l.stride[2], l.stride[3]);
  return l;
}

// One attention problem: what a plan depends on (the scale is a by-value scalar, given at execution).
struct Problem {
  std::int64_t B, S, H, Hkv, Dqk, Dv;
  auto key() const { return std::make_tuple(B, S, H, Hkv, Dqk, Dv); }
  std::string str() const {
    return "q [" + std::to_string(B) + ", " + std::to_string(S) + ", " + std::to_string(H) + ", " + std::to_string(Dqk) +
           "], k/v heads " + std::to_string(Hkv) + ", v head dim " + std::to_string(Dv) + ", bf16, causal";
  }
};
Problem problem_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  return {q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3), v.dim(3)};
}

// An execution plan with the descriptors it was built from, and the workspace it needs.
struct Plan {
  std::deque<Desc> descs;
  cudnnBackendDescriptor_t plan = nullptr;
  std::size_t engine_workspace = 0;  // cuDNN's own
  std::size_t workspace = 0;         // cuDNN's, then the f32 intermediates below (256-byte aligned)
  std::size_t softmax_sum_offset = 0, dq_accum_offset = 0;
  long long engine = -1;
  bool flagged_nondeterministic = false;
};

constexpr std::size_t align256(std::size_t n) { return (n + 255) / 256 * 256; }

// Builds one operation graph (tensors and nodes), then its plan from cuDNN's heuristics.
class GraphBuilder {
 public:
  explicit GraphBuilder(std::string where) : where_(std::move(where)), plan_(std::make_unique<Plan>()) {}

  cudnnBackendDescriptor_t tensor(std::int64_t uid, cudnnDataType_t type, const Layout& l, bool is_virtual,
                                  bool by_value = false) {
    const cudnnBackendDescriptor_t t = add(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const std::int64_t alignment = 16;
    R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, where_);
    R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, l.dim.data(), where_);
    R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, l.stride.data(), where_);
    R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, where_);
    R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, where_);
    R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, where_);
    if (by_value) R1_CUDNN_SET(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, where_);
    finalize(t, "tensor");
    return t;
  }
  cudnnBackendDescriptor_t virt(cudnnDataType_t type, const Layout& l) { return tensor(next_virtual_++, type, l, true); }
  cudnnBackendDescriptor_t scalar(std::int64_t uid) {
    return tensor(uid, CUDNN_DATA_FLOAT, {{1, 1, 1, 1}, {1, 1, 1, 1}}, false, true);
  }

  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    const cudnnBackendDescriptor_t m = add(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    R1_CUDNN_SET(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, where_);
    finalize(m, "matmul");
    const cudnnBackendDescriptor_t op = add(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m, where_);
    finish_op(op, "matmul");
  }

  // y = mode(x[, b][, t]); `axis` for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y,
                 cudnnBackendDescriptor_t b = nullptr, cudnnBackendDescriptor_t t = nullptr,
                 cudnnDataType_t math = CUDNN_DATA_FLOAT, std::int64_t axis = -1) {
    const cudnnBackendDescriptor_t p = add(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    R1_CUDNN_SET(p, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, where_);
    R1_CUDNN_SET(p, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math, where_);
    if (axis >= 0) R1_CUDNN_SET(p, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, where_);
    finalize(p, "pointwise");
    const cudnnBackendDescriptor_t op = add(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, where_);
    if (b) R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, where_);
    if (t) R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, where_);
    finish_op(op, "pointwise");
  }

  // y = reduce(x) over the dims where y has extent 1 (or groups of x's heads where y has fewer).
  void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    const cudnnBackendDescriptor_t r = add(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    R1_CUDNN_SET(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, where_);
    R1_CUDNN_SET(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, where_);
    finalize(r, "reduction");
    const cudnnBackendDescriptor_t op = add(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &r, where_);
    finish_op(op, "reduction");
  }

  // y: x's elements under another layout (a transposed view).
  void reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    const cudnnBackendDescriptor_t op = add(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, where_);
    R1_CUDNN_SET(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, where_);
    finish_op(op, "reshape");
  }

  // The graph's plan from the first of cuDNN's mode-A heuristic engine configurations that finalizes, with
  // whether cuDNN notes that engine non-deterministic (recorded, not filtered: the backward graph's form, dq
  // written directly or accumulated with atomics, is what decides; the GPU test checks the bits). Throws
  // CudnnFailure when none finalizes.
  std::unique_ptr<Plan> build(cudnnHandle_t handle) {
    const cudnnBackendDescriptor_t graph = add(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    R1_CUDNN_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops_.size(), ops_.data(), where_);
    // cuDNN 9.14 (the GPU machine's) takes the handle on the graph and the plan; 9.19 deprecates both attributes.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    R1_CUDNN_SET(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, where_);
    finalize(graph, "operation graph");
    const cudnnBackendDescriptor_t heur = add(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    R1_CUDNN_SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph, where_);
    R1_CUDNN_SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, where_);
    finalize(heur, "engine heuristics (mode A)");
    std::int64_t count = 0;
    check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
          "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)", where_);
    std::vector<cudnnBackendDescriptor_t> configs;
    for (std::int64_t i = 0; i < count; ++i) configs.push_back(add(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &count,
                                   configs.data()),
          "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)", where_);
    std::string tried;
    for (std::int64_t i = 0; i < count; ++i) {
      const cudnnBackendDescriptor_t config = configs[static_cast<std::size_t>(i)];
      long long engine = -1;
      bool nondeterministic = false;
      engine_notes(config, engine, nondeterministic);
      const cudnnBackendDescriptor_t plan = add(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      R1_CUDNN_SET(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, where_);
      R1_CUDNN_SET(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config, where_);
      const cudnnStatus_t s = cudnnBackendFinalize(plan);
      if (s != CUDNN_STATUS_SUCCESS) {
        tried += " engine " + std::to_string(engine) + ": " + status_text(s) + ";";
        continue;
      }
      std::int64_t workspace = 0, n = 0;
      check(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &workspace),
            "cudnnBackendGetAttribute(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)", where_);
      plan_->plan = plan;
      plan_->engine_workspace = plan_->workspace = align256(static_cast<std::size_t>(workspace));
      plan_->engine = engine;
      plan_->flagged_nondeterministic = nondeterministic;
      return std::move(plan_);
    }
#pragma GCC diagnostic pop
    throw CudnnFailure("no cuDNN engine (of " + std::to_string(count) + " from heuristics mode A) runs " + where_ +
                       (tried.empty() ? std::string() : ":" + tried));
  }

 private:
  cudnnBackendDescriptor_t add(cudnnBackendDescriptorType_t type) { return plan_->descs.emplace_back(type, where_).get(); }
  void finalize(cudnnBackendDescriptor_t d, const char* what) {
    check(cudnnBackendFinalize(d), (std::string("cudnnBackendFinalize(") + what + ")").c_str(), where_);
  }
  void finish_op(cudnnBackendDescriptor_t op, const char* what) {
    finalize(op, what);
    ops_.push_back(op);
  }
  // The engine of a configuration: its global index and whether cuDNN notes it non-deterministic.
  void engine_notes(cudnnBackendDescriptor_t config, long long& index, bool& nondeterministic) {
    cudnnBackendDescriptor_t engine = add(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    std::int64_t n = 0;
    if (cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine) !=
        CUDNN_STATUS_SUCCESS)
      return;
    std::int64_t global = -1;
    if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &global) ==
        CUDNN_STATUS_SUCCESS)
      index = global;
    std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
    if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 static_cast<std::int64_t>(notes.size()), &n, notes.data()) == CUDNN_STATUS_SUCCESS)
      for (std::int64_t i = 0; i < n; ++i)
        if (notes[static_cast<std::size_t>(i)] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) nondeterministic = true;
  }

  std::string where_;
  std::unique_ptr<Plan> plan_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  std::int64_t next_virtual_ = kFirstVirtual;
};

// The causal mask on scores s [B, H, S, S]: keys after the query (column > row) become -inf.
cudnnBackendDescriptor_t causal_mask(GraphBuilder& g, cudnnBackendDescriptor_t s, const Layout& scores) {
  const cudnnBackendDescriptor_t row = g.virt(CUDNN_DATA_INT32, scores), col = g.virt(CUDNN_DATA_INT32, scores);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s, row, nullptr, nullptr, CUDNN_DATA_FLOAT, 2);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s, col, nullptr, nullptr, CUDNN_DATA_FLOAT, 3);
  const cudnnBackendDescriptor_t keep = g.virt(CUDNN_DATA_BOOLEAN, scores);
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, keep, col, nullptr, CUDNN_DATA_BOOLEAN);
  const cudnnBackendDescriptor_t masked = g.virt(CUDNN_DATA_FLOAT, scores);
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, s, masked, g.scalar(kNegInf), keep);  // keep ? s : -inf
  return masked;
}

// out = softmax(scale q k^T, causal) v, stats = max + log(sum exp(. - max)) per query row.
std::unique_ptr<Plan> forward_plan(cudnnHandle_t handle, const Problem& p) {
  GraphBuilder g("the cuDNN attention forward graph of " + p.str());
  const Layout scores = packed(p.B, p.H, p.S, p.S), rows = packed(p.B, p.H, p.S, 1);
  const auto q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.H, p.Dqk), false);
  const auto kt = g.tensor(kK, CUDNN_DATA_BFLOAT16, transposed(bshd(p.B, p.S, p.Hkv, p.Dqk)), false);
  const auto v = g.tensor(kV, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.Hkv, p.Dv), false);
  const auto o = g.tensor(kO, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.H, p.Dv), false);
  const auto stats = g.tensor(kStats, CUDNN_DATA_FLOAT, rows, false);
  const auto s = g.virt(CUDNN_DATA_FLOAT, scores), s_scaled = g.virt(CUDNN_DATA_FLOAT, scores);
  g.matmul(q, kt, s);
  g.pointwise(CUDNN_POINTWISE_MUL, s, s_scaled, g.scalar(kScale));
  const auto masked = causal_mask(g, s_scaled, scores);
  const auto max = g.virt(CUDNN_DATA_FLOAT, rows), shifted = g.virt(CUDNN_DATA_FLOAT, scores);
  const auto e = g.virt(CUDNN_DATA_FLOAT, scores), sum = g.virt(CUDNN_DATA_FLOAT, rows);
  const auto log_sum = g.virt(CUDNN_DATA_FLOAT, rows);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, masked, max);
  g.pointwise(CUDNN_POINTWISE_SUB, masked, shifted, max);
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, e);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, sum);
  g.pointwise(CUDNN_POINTWISE_LOG, sum, log_sum);
  g.pointwise(CUDNN_POINTWISE_ADD, max, stats, log_sum);
  const auto prob = g.virt(CUDNN_DATA_BFLOAT16, scores);  // P in bf16 for the P V product
  g.pointwise(CUDNN_POINTWISE_DIV, e, prob, sum);
  g.matmul(prob, v, o);
  return g.build(handle);
}

// dx = sum over the query heads of each K/V head of the per-query-head product a b: direct when H = Hkv, else a
// bf16 full-head product reduced over each group (cuDNN's GQA form).
void product_per_kv_head(GraphBuilder& g, const Problem& p, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                         cudnnBackendDescriptor_t dx, std::int64_t d) {
  if (p.H == p.Hkv) return g.matmul(a, b, dx);
  const auto full = g.virt(CUDNN_DATA_BFLOAT16, packed(p.B, p.H, p.S, d));
  g.matmul(a, b, full);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, full, dx);
}

// dv = P^T dO, dk = scale dS^T q, dq = scale dS k with P = exp(scale q k^T - stats) (causal), dS = P (dO v^T - D),
// D = rowsum(dO * out) kept in f32 in our workspace.
std::unique_ptr<Plan> backward_plan(cudnnHandle_t handle, const Problem& p, CudnnBackward variant) {
  GraphBuilder g(std::string("the cuDNN attention backward graph (") +
                 (variant == CudnnBackward::deterministic ? "deterministic" : "non-deterministic") + ") of " + p.str());
  const Layout scores = packed(p.B, p.H, p.S, p.S), rows = packed(p.B, p.H, p.S, 1);
  const Layout scores_t = {{p.B, p.H, p.S, p.S}, {p.H * p.S * p.S, p.S * p.S, 1, p.S}};
  const Layout k_layout = bshd(p.B, p.S, p.Hkv, p.Dqk);
  const auto q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.H, p.Dqk), false);
  const auto kt = g.tensor(kK, CUDNN_DATA_BFLOAT16, transposed(k_layout), false);
  const auto vt = g.tensor(kV, CUDNN_DATA_BFLOAT16, transposed(bshd(p.B, p.S, p.Hkv, p.Dv)), false);
  const auto o = g.tensor(kO, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.H, p.Dv), false);
  const auto d_o = g.tensor(kDO, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.H, p.Dv), false);
  const auto stats = g.tensor(kStats, CUDNN_DATA_FLOAT, rows, false);
  const auto dq = g.tensor(kDQ, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.H, p.Dqk), false);
  const auto dk = g.tensor(kDK, CUDNN_DATA_BFLOAT16, k_layout, false);
  const auto dv = g.tensor(kDV, CUDNN_DATA_BFLOAT16, bshd(p.B, p.S, p.Hkv, p.Dv), false);
  const auto scale = g.scalar(kScale);

  // D = rowsum(dO * out), times 1 (the dropout-scale slot of cuDNN's pattern), kept in our workspace.
  const auto prod = g.virt(CUDNN_DATA_FLOAT, packed(p.B, p.H, p.S, p.Dv)), row_sum = g.virt(CUDNN_DATA_FLOAT, rows);
  const auto softmax_sum = g.tensor(kSoftmaxSum, CUDNN_DATA_FLOAT, rows, false);
  g.pointwise(CUDNN_POINTWISE_MUL, d_o, prod, o);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, prod, row_sum);
  g.pointwise(CUDNN_POINTWISE_MUL, row_sum, softmax_sum, g.scalar(kOne));

  // P = exp(scale q k^T - stats), causal; dv = P^T dO.
  const auto s = g.virt(CUDNN_DATA_FLOAT, scores), s_scaled = g.virt(CUDNN_DATA_FLOAT, scores);
  const auto shifted = g.virt(CUDNN_DATA_FLOAT, scores);
  g.matmul(q, kt, s);
  g.pointwise(CUDNN_POINTWISE_MUL, s, s_scaled, scale);
  g.pointwise(CUDNN_POINTWISE_SUB, s_scaled, shifted, stats);
  const auto masked = causal_mask(g, shifted, scores);
  const auto prob = g.virt(CUDNN_DATA_FLOAT, scores), prob_t = g.virt(CUDNN_DATA_BFLOAT16, scores_t);
  g.pointwise(CUDNN_POINTWISE_EXP, masked, prob);
  g.reshape(prob, prob_t);
  product_per_kv_head(g, p, prob_t, d_o, dv, p.Dv);

  // dS = scale P (dO v^T - D); dk = dS^T q.
  const auto dp = g.virt(CUDNN_DATA_FLOAT, scores), dp_centered = g.virt(CUDNN_DATA_FLOAT, scores);
  const auto ds_unscaled = g.virt(CUDNN_DATA_FLOAT, scores), ds = g.virt(CUDNN_DATA_FLOAT, scores);
  g.matmul(d_o, vt, dp);
  g.pointwise(CUDNN_POINTWISE_SUB, dp, dp_centered, softmax_sum);
  g.pointwise(CUDNN_POINTWISE_MUL, dp_centered, ds_unscaled, prob);
  g.pointwise(CUDNN_POINTWISE_MUL, ds_unscaled, ds, scale);
  const auto ds_t = g.virt(CUDNN_DATA_BFLOAT16, scores_t);
  g.reshape(ds, ds_t);
  product_per_kv_head(g, p, ds_t, q, dk, p.Dqk);

  // dq = dS k: straight into dq (deterministic), or accumulated in f32 in our workspace, then converted.
  const auto k = g.virt(CUDNN_DATA_BFLOAT16, k_layout);
  g.reshape(kt, k);
  const bool deterministic = variant == CudnnBackward::deterministic;
  if (deterministic) {
    g.matmul(ds, k, dq);
  } else {
    const auto dq_accum = g.tensor(kDQAccum, CUDNN_DATA_FLOAT, packed(p.B, p.H, p.S, p.Dqk), false);
    g.matmul(ds, k, dq_accum);
    g.pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, dq);
  }
  std::unique_ptr<Plan> plan = g.build(handle);
  const auto f32_bytes = [](std::int64_t n) { return align256(static_cast<std::size_t>(n) * sizeof(float)); };
  plan->softmax_sum_offset = plan->workspace;
  plan->workspace += f32_bytes(p.B * p.H * p.S);
  if (!deterministic) {
    plan->dq_accum_offset = plan->workspace;
    plan->workspace += f32_bytes(p.B * p.H * p.S * p.Dqk);
  }
  return plan;
}

// The three graphs of a problem: one forward, two backward variants.
enum class Direction : int { forward, backward_deterministic, backward_nondeterministic };
Direction backward_direction(CudnnBackward variant) {
  return variant == CudnnBackward::deterministic ? Direction::backward_deterministic
                                                 : Direction::backward_nondeterministic;
}

// A cached plan, or why cuDNN has none for its graph.
struct PlanEntry {
  std::unique_ptr<Plan> plan;
  std::string why;
};

// Per-device cuDNN state, owned by the context's CudaResources: the handle, the plans by problem and direction,
// and the fallback reasons already warned about.
struct CudnnState {
  cudnnHandle_t handle = nullptr;
  std::string handle_failure;
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, int>, PlanEntry>
      plans;
  std::set<std::string> warned;
  CudnnState() = default;
  CudnnState(const CudnnState&) = delete;
  CudnnState& operator=(const CudnnState&) = delete;
  ~CudnnState() {
    plans.clear();
    if (handle) cudnnDestroy(handle);
  }
};

CudnnState& state(const Context& ctx) {
  CudaResources& r = ctx.cuda_resources();
  if (!r.cudnn_attention) {
    auto s = std::make_shared<CudnnState>();
    const cudnnStatus_t status = cudnnCreate(&s->handle);
    if (status != CUDNN_STATUS_SUCCESS) {
      s->handle = nullptr;
      s->handle_failure = "cudnnCreate failed on cuda:" + std::to_string(r.device) + ": " + status_text(status);
    }
    r.cudnn_attention = s;
  }
  return *static_cast<CudnnState*>(r.cudnn_attention.get());
}

// The plan of one graph, built at its first request (milliseconds to seconds) and kept.
const PlanEntry& plan_for(const Context& ctx, const Problem& p, Direction d) {
  CudnnState& st = state(ctx);
  const auto key = std::tuple_cat(p.key(), std::make_tuple(static_cast<int>(d)));
  if (const auto it = st.plans.find(key); it != st.plans.end()) return it->second;
  PlanEntry& entry = st.plans[key];
  if (!st.handle) {
    entry.why = st.handle_failure;
    return entry;
  }
  try {
    entry.plan = d == Direction::forward ? forward_plan(st.handle, p)
                 : d == Direction::backward_deterministic
                     ? backward_plan(st.handle, p, CudnnBackward::deterministic)
                     : backward_plan(st.handle, p, CudnnBackward::nondeterministic);
  } catch (const CudnnFailure& e) {
    entry.why = e.what();
  } catch (const std::exception& e) {  // never a cached entry without a plan and without a reason
    entry.plan.reset();
    entry.why = std::string("building the cuDNN plan failed: ") + e.what();
  }
  // The deterministic backward's workspace holds dP (B H S^2 bf16): at long sequences and many heads it outgrows
  // the device; past a quarter of its memory the call runs our kernel instead of failing for memory.
  std::size_t free_bytes = 0, total_bytes = 0;
  if (entry.plan && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess && entry.plan->workspace > total_bytes / 4) {
    entry.why = "the cuDNN workspace of " + std::to_string(entry.plan->workspace >> 20) +
                " MiB exceeds a quarter of the device's memory";
    entry.plan.reset();
  }
  return entry;
}

// Why cuDNN cannot take the call from its shapes, dtypes and pointers alone; empty if it may.
std::string static_reason(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& segment_ids) {
  if (segment_ids.defined()) return "segment ids (packed samples) are not expressed in the cuDNN graph";
  if (q.dtype() != DType::bf16) return std::string("dtype ") + dtype_name(q.dtype()) + " (the cuDNN path is bf16 only)";
  const std::int64_t dqk = q.dim(3), dv = v.dim(3);
  if (dqk % 8 || dv % 8 || dqk > 256 || dv > 256)
    return "head dims " + std::to_string(dqk) + " and " + std::to_string(dv) + " (cuDNN takes multiples of 8 up to 256)";
  if (q.dim(1) % 128)
    return "sequence length " + std::to_string(q.dim(1)) +
           " is not a multiple of 128 (cuDNN <= 9.15's backward needs a padding-mask workaround there)";
  for (const Tensor* t : {&q, &k, &v})
    if (reinterpret_cast<std::uintptr_t>(t->raw()) % 16) return "q, k or v is not 16-byte aligned";
  return {};
}

void require_aligned(const char* op, const char* name, const Tensor& t) {
  R1_REQUIRE(reinterpret_cast<std::uintptr_t>(t.raw()) % 16 == 0, op, ": ", name, " ", t.str(),
             " must be 16-byte aligned for cuDNN");
}

// Runs a plan: the variant pack of uids and device (or, for by-value scalars, host) pointers, and the workspace.
void execute(const Context& ctx, const Plan& plan, const std::vector<std::int64_t>& uids, const std::vector<void*>& ptrs,
             void* workspace, const std::string& where) {
  CudnnState& st = state(ctx);
  const auto fail = [&](const char* call, cudnnStatus_t s) {
    R1_FAIL(cuda, call, " failed for ", where, ": ", status_text(s));
  };
  if (const cudnnStatus_t s = cudnnSetStream(st.handle, ctx.cuda_resources().stream); s != CUDNN_STATUS_SUCCESS)
    fail("cudnnSetStream", s);
  cudnnBackendDescriptor_t pack = nullptr;
  if (const cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
      s != CUDNN_STATUS_SUCCESS)
    fail("cudnnBackendCreateDescriptor(variant pack)", s);
  const std::unique_ptr<void, decltype(&cudnnBackendDestroyDescriptor)> owner(pack, &cudnnBackendDestroyDescriptor);
  const auto n = static_cast<std::int64_t>(uids.size());
  cudnnStatus_t s = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids.data());
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs.data());
  if (s == CUDNN_STATUS_SUCCESS)
    s = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(pack);
  if (s != CUDNN_STATUS_SUCCESS) fail("building the variant pack", s);
  if ((s = cudnnBackendExecute(st.handle, plan.plan, pack)) != CUDNN_STATUS_SUCCESS) fail("cudnnBackendExecute", s);
}

// The plan of a call the caller has checked with cudnn_attention_supported; a user error if there is none.
const Plan& checked_plan(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Direction d,
                         const char* op) {
  const std::string why = static_reason(q, k, v, Tensor());
  R1_REQUIRE(why.empty(), op, ": cuDNN attention does not take q ", q.str(), ": ", why);
  const PlanEntry& entry = plan_for(ctx, problem_of(q, k, v), d);
  R1_REQUIRE(entry.plan, op, ": ", entry.why);
  return *entry.plan;
}

}  // namespace

bool cudnn_attention_supported(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& segment_ids, CudnnBackward variant, std::string* why) {
  std::string reason = static_reason(q, k, v, segment_ids);
  const Problem p = problem_of(q, k, v);
  if (reason.empty()) reason = plan_for(ctx, p, Direction::forward).why;
  if (reason.empty()) reason = plan_for(ctx, p, backward_direction(variant)).why;
  if (why) *why = reason;
  return reason.empty();
}

bool cudnn_attention_selected(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& segment_ids, CudnnBackward variant) {
  std::string why;
  if (cudnn_attention_supported(ctx, q, k, v, segment_ids, variant, &why)) return true;
  // Once per kind of reason (its words without the numbers): generation's prefills alone bring many lengths.
  std::string kind = why;
  std::erase_if(kind, [](char ch) { return ch >= '0' && ch <= '9'; });
  if (state(ctx).warned.insert(kind).second)
    log_warn("attention: cuDNN was selected but does not take q ", q.str(), " (", why,
             "); our kernel runs instead (said once for each such reason)");
  return false;
}

void cudnn_attention_forward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                             const Tensor& out, const Tensor& lse) {
  const char* op = "cudnn_attention_forward";
  const Plan& plan = checked_plan(ctx, q, k, v, Direction::forward, op);
  require_aligned(op, "out", out);
  require_aligned(op, "lse", lse);
  const Tensor workspace = ctx.empty({static_cast<std::int64_t>(std::max<std::size_t>(plan.workspace, 1))}, DType::u8);
  float scale_value = scale, neg_inf = -std::numeric_limits<float>::infinity();
  execute(ctx, plan, {kQ, kK, kV, kO, kStats, kScale, kNegInf},
          {q.raw(), k.raw(), v.raw(), out.raw(), lse.raw(), &scale_value, &neg_inf}, workspace.raw(),
          "the cuDNN attention forward of " + problem_of(q, k, v).str());
}

void cudnn_attention_backward(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& dout, const Tensor& lse, float scale, const Tensor& dq, const Tensor& dk,
                              const Tensor& dv, CudnnBackward variant) {
  const char* op = "cudnn_attention_backward";
  const Plan& plan = checked_plan(ctx, q, k, v, backward_direction(variant), op);
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"out", &out}, {"dout", &dout}, {"lse", &lse},
                                {"dq", &dq}, {"dk", &dk}, {"dv", &dv}})
    require_aligned(op, name, *t);
  const Tensor workspace = ctx.empty({static_cast<std::int64_t>(plan.workspace)}, DType::u8);
  auto* base = static_cast<std::uint8_t*>(workspace.raw());
  float scale_value = scale, neg_inf = -std::numeric_limits<float>::infinity(), one = 1.0f;
  std::vector<std::int64_t> uids{kQ, kK, kV, kO, kDO, kStats, kDQ, kDK, kDV, kScale, kNegInf, kOne, kSoftmaxSum};
  std::vector<void*> ptrs{q.raw(),       k.raw(),      v.raw(),  out.raw(), dout.raw(),
                          lse.raw(),     dq.raw(),     dk.raw(), dv.raw(),  &scale_value,
                          &neg_inf,      &one,         base + plan.softmax_sum_offset};
  if (variant == CudnnBackward::nondeterministic) {
    uids.push_back(kDQAccum);
    ptrs.push_back(base + plan.dq_accum_offset);
  }
  execute(ctx, plan, uids, ptrs, base, "the cuDNN attention backward of " + problem_of(q, k, v).str());
}

CudnnAttentionPlanInfo cudnn_attention_plan_info(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                                                 CudnnBackward variant) {
  const char* op = "cudnn_attention_plan_info";
  const Plan& forward = checked_plan(ctx, q, k, v, Direction::forward, op);
  const Plan& backward = checked_plan(ctx, q, k, v, backward_direction(variant), op);
  return {forward.engine, backward.engine, forward.workspace, backward.workspace, backward.flagged_nondeterministic};
}

int cudnn_version() { return static_cast<int>(cudnnGetVersion()); }

}  // namespace r1::kernels::cuda
