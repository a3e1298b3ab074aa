// The whole language model: embedding, transformer blocks (model/block.hpp), final norm, output head and
// cross-entropy (model/head.hpp), the optional MTP module (model/mtp.hpp), with an explicit backward,
// optional full activation recomputation per block, pipeline chunks, and generation over a KV cache
// (defined in model/inference.cpp).
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/rope.hpp"
#include "model/batch.hpp"
#include "model/block.hpp"
#include "model/config.hpp"
#include "model/gqa.hpp"
#include "model/mla.hpp"
#include "model/params.hpp"
#include "model/tensor_parallel.hpp"
#include "parallel/pipeline_split.hpp"

namespace r1 {

class LmHead;
class MtpModule;

// The groups a model is split over (null: none).
struct ModelGroups {
  parallel::Communicator* tp = nullptr;  // heads, FFN columns, vocabulary (model/tensor_parallel.hpp)
  parallel::Communicator* ep = nullptr;  // routed experts (MoeFfn)
  // Pipeline parallelism: the trunk's layers cut into pp size x virtual_stages chunks
  // (parallel::split_layers); this rank holds the chunks `placement` puts on it (parallel::chunk_rank):
  // rank, rank + pp size, ... (interleaving), or rank and 2 pp size - 1 - rank (the V of DualPipeV).
  parallel::Communicator* pp = nullptr;
  int virtual_stages = 1;  // chunks per rank (config/run.hpp pipeline_chunks_per_rank)
  parallel::ChunkPlacement placement = parallel::ChunkPlacement::round_robin;
  // DualPipe's two copies: the trunk is cut into pp size stages (no virtual stages) and rank r holds two of
  // them, stage r (local chunk 0, micro-batches fed from the first rank) and stage pp size - 1 - r (local
  // chunk 1, a second copy of the stage that rank pp size - 1 - r holds as its chunk 0, for those fed from
  // the last rank). Both copies are initialised and trained alike (GradReducer sums their gradients).
  bool two_copies = false;
  // Sequence parallelism (with tp): the residual stream between the TP regions -- block inputs and
  // outputs, norms, the MTP projections, pipeline activations -- holds this rank's 1/tp of the token rows;
  // each TP region all-gathers its normed input and reduce-scatters its partial output (instead of one
  // all-reduce), so the norms' and the MTP projections' gradients become partial sums over TP.
  bool sequence_parallel = false;
  // The MoE token exchanges run beside the shared experts (MoeFfn); the same bits either way.
  bool overlap_expert_comm = true;
};

// Called during a backward with parameters whose gradients then hold this backward's contribution in full
// (no later part of it adds to them): after each trunk block's backward with the block's parameters, and
// after the head's backward with the final norm, the output head (unless tied to the embedding) and the
// MTP module. The training loop hands one to the last micro-batch's backward, to start their reduction over
// the data-parallel replicas while the backward goes on (GradReducer::start). Empty: nothing is called.
using GradsReady = std::function<void(std::span<Param* const>)>;

// The KV cache of a generation batch: one cache per trunk layer over the same sequence slots -- MLA's
// latents ([model] arch = mla) or the grouped-query-attention families' keys and values -- and how many
// tokens each slot holds (host side: the engine decides what runs next from it). Contiguous (each slot
// max_len rows of its own) or paged: every layer's rows live in a pool of fixed-size blocks, and a block
// table, shared by the layers, lists each slot's blocks in token order (kernels::CacheBlocks); the engine
// assigns and frees blocks as sequences grow and finish (generate/engine.cpp).
struct KvCache {
  std::int64_t max_len = 0;     // tokens a slot can hold
  std::int64_t block_size = 0;  // paged: tokens per block; 0: contiguous
  std::vector<MlaAttention::Cache> layers;      // arch mla
  std::vector<GqaAttention::Cache> gqa_layers;  // arch llama, qwen2, qwen3
  std::vector<std::int32_t> lengths;
  // Paged: the block table on the host, [slots, blocks_per_slot()] pool block ids (entries past a slot's
  // blocks hold 0 and are never read), and the same in the model's memory (every layer's Cache::table).
  std::vector<std::int32_t> table;
  Tensor block_table;
  bool paged() const { return block_size > 0; }
  std::int64_t slots() const { return static_cast<std::int64_t>(lengths.size()); }
  std::int64_t blocks_per_slot() const { return paged() ? (max_len + block_size - 1) / block_size : 1; }
  // Paged: the blocks in each layer's pool.
  std::int64_t pool_blocks() const;
  // Copies `table` into block_table in place, so that a captured decode graph reads the new blocks.
  void upload_table() const;
  // Every tensor of the cache, layer by layer: each [slots, max_len, W] (row (b, j) is slot b's token j), or
  // paged each pool [blocks, block_size, W].
  std::vector<Tensor> tensors() const;
  // The same tensors replaced by `t` (tensors()'s order and count; the block table kept).
  void set_tensors(const std::vector<Tensor>& t);
};

class Model {
 public:
  // Under tensor parallelism the embedding and the output head hold this rank's vocabulary rows, the
  // cross-entropy is vocabulary-parallel, and each block completes its layers' partial sums with one
  // all-reduce after attention and one after the FFN (two more in the backward). Generation (KV cache,
  // prefill, decode) runs under TP too (the TP ranks hold the same sequences; the logits are gathered);
  // under expert parallelism every prefill and decode is collective over the EP group (the MoE layers
  // exchange tokens), so its ranks must run them in step (lockstep_group()). Under pipeline parallelism
  // each prefill and decode is collective over the pipeline group: the chunks run one after another on
  // their stages and every stage gets the logits, so the stages too hold the same sequences.
  Model(const ModelConfig& c, ParamStore& params, ModelGroups groups = {});
  ~Model();
  const ModelConfig& config() const { return c_; }
  ParamStore& params() const { return params_; }
  // The ranks that must run each forward pass (training, prefill or decode) together, whatever their
  // batches: the expert-parallel group when it has more than one rank, else null.
  parallel::Communicator* lockstep_group() const { return ep_ != nullptr && ep_->size() > 1 ? ep_ : nullptr; }
  // Rows of the residual stream (chunk inputs and outputs, Model::chunk_output) for a batch of T tokens:
  // T / tp under sequence parallelism, else T.
  std::int64_t residual_rows(std::int64_t tokens) const { return tp_.residual_rows(tokens); }
  bool full_recompute = false;  // keep only each block's input; recompute the block before its backward
  // The parameter groups a backward of this rank's chunks hands its GradsReady hook, in that order. A
  // replica without micro-batches announces these instead, so that every replica starts its reductions
  // in the same order.
  std::vector<std::span<Param* const>> grads_complete_order() const;

  // The micro-batch checked against the model (ids, targets, length) and copied into its memory, with the
  // positions, MTP inputs and vocabulary-shard views every layer reads (model/batch.cpp).
  DeviceBatch upload(const TokenBatch& b) const;

  struct Saved;
  struct SavedDeleter {
    void operator()(Saved* s) const;
  };
  using SavedPtr = std::unique_ptr<Saved, SavedDeleter>;
  // Runs the forward pass and returns what the backward needs (the whole model: no pipeline parallelism).
  SavedPtr forward(const DeviceBatch& batch, ForwardResult& result) const;

  // Pipeline parallelism: this rank's chunks, in model order, and the passes of one of them. The first
  // chunk of the model embeds batch.ids (`input` unused); the others start from the previous chunk's
  // output activation `input` [T, D]. The last chunk ends in the head and the loss; the others' output
  // is chunk_output(saved). A chunk's result holds its own MoE layers' counts and balance losses.
  struct ChunkInfo {
    int index = 0;                            // among the model's chunks (two_copies: the stage)
    std::int64_t first_layer = 0, layers = 0;  // trunk layers [first_layer, first_layer + layers)
    bool embedding = false, head = false;
    bool second_copy = false;  // ModelGroups::two_copies: local chunk 1, the mirror rank's stage
  };
  const std::vector<ChunkInfo>& chunks() const { return chunks_; }
  // ModelGroups::two_copies: the parameters of the second copy's chunk (empty otherwise), and the pipeline
  // group, in which rank pp size - 1 - r holds them as its first copy.
  const std::vector<Param*>& second_copy_params() const { return second_copy_; }
  parallel::Communicator* pipeline_group() const { return pp_; }
  parallel::Communicator* tensor_group() const { return tp_.group.comm; }
  SavedPtr forward_chunk(int local, const DeviceBatch& batch, const Tensor& input, ForwardResult& result) const;
  static const Tensor& chunk_output(const Saved& s);
  // Accumulates the chunk's parameter gradients from d(loss)/d(output) `dout` (the last chunk: from its
  // loss, each token weighted token_weight) and returns d(loss)/d(input) (undefined for the first chunk).
  // `ready` is called with each group of parameters whose gradients are complete (GradsReady).
  Tensor backward_chunk(int local, const DeviceBatch& batch, Saved& saved, const Tensor& dout, float token_weight,
                        float balance_weight, const GradsReady& ready = {}) const;
  // The same with a weight per token for the last chunk's loss (f32 [T], consumed; undefined for the other
  // chunks), as the whole-model backward with token weights.
  Tensor backward_chunk(int local, const DeviceBatch& batch, Saved& saved, const Tensor& dout, const Tensor& token_weights,
                        float mtp_token_weight, float balance_weight, const GradsReady& ready = {}) const;
  // A forward pass without backward through the whole model, for scoring: every rank gets the per-token
  // cross-entropies (f32 [T], as token_losses). Under pipeline parallelism it is collective over the
  // pipeline group: the chunks run in model order on their stages and the head's stage broadcasts the losses.
  Tensor score_tokens(const DeviceBatch& batch) const;
  // Index among the trunk's MoE layers (model order) of each MoE layer this rank holds, in the order of
  // ForwardResult::expert_counts over its chunks.
  std::vector<int> moe_layer_ids() const;
  // The logits of the last forward ([T, V], compute dtype; [T, V / tp], this rank's vocabulary columns,
  // under tensor parallelism) before backward overwrites them.
  static const Tensor& logits(const Saved& s);
  // Accumulates every parameter gradient of the micro-batch. `token_weight`: d(total loss)/d(token
  // loss); `balance_weight`: d(total loss)/d(balance loss). `ready` is called with each group of parameters
  // whose gradients are complete (GradsReady).
  void backward(const DeviceBatch& batch, Saved& saved, float token_weight, float balance_weight,
                const GradsReady& ready = {}) const;
  // The same with a weight per token (f32 [T] in the model's memory): d(total loss)/d(token's cross
  // entropy), e.g. -advantage/|o| in policy-gradient RL; the MTP head gets `mtp_token_weight` per token.
  // The tensor is consumed (overwritten).
  void backward(const DeviceBatch& batch, Saved& saved, const Tensor& token_weights, float mtp_token_weight,
                float balance_weight, const GradsReady& ready = {}) const;
  // The normalised final hidden state of the last forward ([T, D], compute dtype): what the LM head reads,
  // and what a scalar head (the reward model) reads instead.
  static const Tensor& final_hidden(const Saved& s);
  // Accumulates the trunk's parameter gradients (final norm, blocks, embedding) from d(loss)/d(final_hidden)
  // alone ([T, D], f32 or the compute dtype); the LM head and the MTP module get none. For losses on the
  // final hidden state rather than on next-token predictions (the reward model). `ready` is called with
  // each block's parameters as its backward completes.
  void backward_from_hidden(const DeviceBatch& batch, Saved& saved, const Tensor& d_hidden, float balance_weight,
                            const GradsReady& ready = {}) const;
  // Per-token cross-entropies of the last forward (f32 [T]; 0 where the target is -1): -log p(target).
  static const Tensor& token_losses(const Saved& s);
  // Auxiliary-loss-free balancing after an optimizer step: counts summed over the step's micro-batches
  // (and data-parallel ranks), one host vector per MoE layer in forward order.
  void update_router_bias(const std::vector<std::vector<std::int64_t>>& counts, float gamma) const;
  int moe_layer_count() const;
  // The bytes this rank's MoE layers sent to the other EP ranks over their life, by direction (dispatch: the
  // forward's tokens and the backward's output gradients; combine: the expert outputs and the input gradients).
  TokenDispatcher::Traffic expert_traffic() const;
  // The trunk's MoE layers (the L_moe of routing records: TokenBatch::experts), and which of them this rank
  // runs (under pipeline parallelism, those of its chunks), ascending.
  std::int64_t trunk_moe_layers() const { return c_.dense ? 0 : c_.n_layers - c_.n_dense_layers; }
  std::vector<std::int64_t> trunk_moe_layers_here() const;

  // Inference (generation; no backward, MTP modules unused; model/inference.cpp). Logits come back as f32 [B, V] in the
  // model's memory, one row per cache slot: the next-token logits after each slot's last token. The
  // cache holds this rank's trunk layers (under pipeline parallelism: those of its chunks).
  KvCache make_kv_cache(std::int64_t slots, std::int64_t max_len) const;
  // A paged cache (KvCache): `slots` slots of up to max_len tokens over pools of `pool_blocks` blocks of
  // `block_size` tokens per layer; every table entry 0 (the caller assigns blocks, then upload_table()).
  KvCache make_paged_kv_cache(std::int64_t slots, std::int64_t max_len, std::int64_t block_size,
                              std::int64_t pool_blocks) const;
  // Runs each prompt (one per slot, 1 <= length <= max_len) through the trunk as one right-padded batch
  // and fills the cache; lengths = prompt lengths. `experts`, when given (i32 [L_moe, B S, k] in the model's
  // memory), records this rank's MoE layers' routing of every row b S + s of the right-padded batch.
  Tensor prefill(KvCache& cache, const std::vector<std::vector<std::int32_t>>& prompts, const Tensor& experts = {}) const;
  // Appends one token per slot at position lengths[b] (< max_len; 0 starts a sequence, as chunked prefill
  // does) and advances every length; `experts` (i32 [L_moe, B, k]) records the routing as prefill's does.
  // Returns the logits of every slot ([B, V]) or, when `logit_rows` is given (slots, each < B, at least one),
  // of those slots only ([n, V], in that order): a chunked prefill's rows need only their prompt's last.
  Tensor decode(KvCache& cache, const std::vector<std::int32_t>& tokens, const Tensor& experts = {},
                const std::vector<std::int32_t>* logit_rows = nullptr) const;
  // The lengths after decoding `tokens` (one per slot), checked as decode() checks them.
  std::vector<std::int32_t> decode_lengths(const KvCache& cache, const std::vector<std::int32_t>& tokens) const;
  // decode() from device inputs without touching the host (no copies, no synchronisation), for CUDA-graph
  // capture: ids, positions (the lengths before) and lengths (after) are i32 [slots] in device memory; the
  // caller advances cache.lengths. Needs decodes_on_device(slots): one CUDA device, no TP, EP or PP, and
  // every MoE layer's decode batch within MoeFfn::decode_on_device.
  bool decodes_on_device(std::int64_t slots) const;
  Tensor decode_on_device(const KvCache& cache, const Tensor& ids, const Tensor& positions, const Tensor& lengths,
                          const Tensor& experts = {}) const;
  // Keeps only the slots listed (in that order, each once), so finished sequences stop costing compute
  // (paged: their block table rows; the pools stay).
  void keep_slots(KvCache& cache, const std::vector<std::int32_t>& slots) const;

 private:
  // Runs `run(local, input)` for each of this rank's chunks in model order and returns the last one's
  // output. `input` is the previous chunk's output ([rows, D] in the compute dtype), received from its
  // stage (undefined for the first chunk); every output but the model's last is sent on to the next
  // chunk's stage. Walking the chunks in model order on every rank pairs the sends and receives of the
  // whole pipeline (chunk k feeds chunk k + 1 on its stage, which may be the same one: the turn of the V).
  Tensor run_chunks(std::int64_t rows, const std::function<Tensor(int local, const Tensor& input)>& run) const;
  // `b` as block `block` (of this rank's) sees it: with its MoE layer's rows of the routing `experts` (i32
  // [L_moe, T, k]; undefined: none), replayed or recorded.
  BatchShape layer_shape(const BatchShape& b, std::size_t block, const Tensor& experts, bool replay) const;
  std::int64_t moe_index(std::size_t block) const;  // the block's trunk MoE layer, -1 for a dense FFN
  // The chunk's blocks backward from d(chunk output), each block's activations freed and its parameters
  // handed to `ready` as soon as its backward is done; the embedding's too when it holds it, else returns
  // d(chunk input).
  Tensor trunk_backward(int local, const DeviceBatch& b, Saved& s, const Tensor& dtrunk, float balance_weight,
                        const GradsReady& ready) const;
  // The head's backward (and MTP's) from per-token loss weights: d(loss)/d(trunk output).
  Tensor head_backward(const DeviceBatch& b, Saved& s, const Tensor& dloss, float mtp_token_weight,
                       float balance_weight, const GradsReady& ready) const;
  const ChunkInfo& whole_model() const;  // the one chunk of a model without pipeline parallelism
  std::int64_t block_index(int local) const;  // blocks_ index of the chunk's first layer
  int chunk_rank(int chunk) const;            // the pipeline rank of one of the model's chunks

  // Inference (model/inference.cpp).
  // One inference pass over T token rows: `embed()` ([T, D], the first chunk's input), `layer(l, x, y)`
  // for each of this rank's trunk layers l (x, y [T, D]; y is overwritten), and the logits of the trunk
  // rows `rows` (i32 [B]; every row when undefined). Under pipeline parallelism the chunks run stage by
  // stage (run_chunks) and the logits are broadcast from the head's stage to every stage.
  Tensor infer(std::int64_t T, const std::function<Tensor()>& embed, const Tensor& rows,
               const std::function<void(std::size_t l, const Tensor& x, const Tensor& y)>& layer) const;
  // The decode pass of the tokens `embed()` embeds ([B, D]): every layer over the cache (recording the routing
  // in `experts` when defined), then the logits of the slots `rows` (i32 [n]; every slot when undefined).
  Tensor decode_trunk(const KvCache& cache, const std::function<Tensor()>& embed, const Tensor& positions,
                      const Tensor& lengths, const Tensor& experts, const Tensor& rows = {}) const;
  // keep_slots of a contiguous cache: the kept slots' rows gathered into new tensors.
  static void keep_rows(const kernels::Context& ctx, KvCache& cache, const std::vector<std::int32_t>& slots);
  // [n, D] embeddings of token ids at inference (vocabulary-parallel under TP).
  Tensor embed_tokens(const std::vector<std::int32_t>& ids) const;

  ModelConfig c_;
  ParamStore& params_;
  TpRegions tp_;  // sequence parallelism: ModelGroups::sequence_parallel with an active TP group
  parallel::Communicator* ep_ = nullptr;
  parallel::Communicator* pp_ = nullptr;  // the pipeline group when it has more than one stage
  int n_chunks_ = 1;                      // the model's pipeline chunks, placed on pp_ by placement_
  parallel::ChunkPlacement placement_ = parallel::ChunkPlacement::round_robin;
  kernels::RopeTables rope_;
  std::vector<ChunkInfo> chunks_;
  std::vector<std::unique_ptr<TransformerBlock>> blocks_;  // this rank's trunk layers, chunk after chunk
  Param* embed_ = nullptr;           // on the rank of the first chunk
  std::unique_ptr<LmHead> head_;     // head_, mtp_: on the rank of the last chunk
  std::vector<std::unique_ptr<MtpModule>> mtp_;  // one per MTP depth
  std::vector<Param*> head_params_;  // the final norm, an untied output head and the MTP modules
  std::vector<Param*> second_copy_;  // ModelGroups::two_copies: the second copy's chunk's parameters
};

}  // namespace r1
