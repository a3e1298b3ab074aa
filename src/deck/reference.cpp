#include "deck/reference.hpp"

#include <algorithm>
#include <sstream>

#include "core/error.hpp"
#include "deck/schema.hpp"

namespace r1 {

namespace {

std::string choices_text(const KeyDecl& k, std::string_view sep) {
  std::string out;
  for (std::string_view c : k.choices) out += (out.empty() ? "" : std::string(sep)) + std::string(c);
  return out;
}

// "int, 1 .. 4096", "enum: softmax|sigmoid", "input path".
std::string type_text(const KeyDecl& k) {
  std::string t(key_type_name(k.type));
  if (k.type == KeyType::choice) return t + ": " + choices_text(k, "|");
  const std::string range = k.range_text();
  return range.empty() ? t : t + ", " + range;
}

constexpr const char* kMarkdownIntro = R"(# Input decks

An r1hpc job is one deck: `mpirun -np N r1hpc DECK` (or `srun r1hpc DECK`). This page is generated
from the declarations the deck parser uses (`r1hpc --help-deck=markdown > docs/deck.md`), and a test
keeps it equal to them, so every key below exists with exactly this type, default and range.

## Syntax

A deck is INI text in Boost.ProgramOptions config-file syntax:

```ini
# R1-Zero style GRPO on the tiny model
[run]
stage = grpo
output_dir = runs/grpo_tiny

[model]
preset = tiny            # inputs/models/tiny.deck
max_seq_len = 512        # overrides the preset

[grpo]
group_size = 8
```

- `[section]` starts a section; `key = value` lines follow. `#` starts a comment anywhere on a line,
  so values cannot contain `#`. Values are not quoted; surrounding blanks are dropped.
- Booleans are `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`). Integer lists are
  comma-separated (`pass_k = 1, 4, 16`); an empty value is an empty list.
- In path values `${NAME}` is replaced by the environment variable NAME (`output_dir = ${SCRATCH}/r1`).
  Relative paths are relative to the working directory the job starts in, except `[model] preset`.
- A key may appear once per deck. Keys left out take the defaults listed below.

## Where values come from

Lowest to highest precedence:

1. the defaults below;
2. the model preset named by `[model] preset`, which fills the `[model]` keys;
3. the deck's own keys;
4. `--set section.key=value` on the command line (repeatable; a later one wins).

`[model] preset = NAME` reads `NAME.deck` from the deck's own directory, then from
`$R1HPC_INPUTS/models`, then from the source tree's `inputs/models` (tiny, small, bench, v2-lite-16b,
v3-671b; the grouped-query-attention students tiny-llama, tiny-qwen2, tiny-qwen3, qwen2.5-1.5b, qwen2.5-7b,
llama-3.1-8b). A value with a `/` or ending in `.deck` is a path, relative to the deck naming it (to the
working directory when it comes from `--set`). A preset holds only `[model]` keys and names no other
preset.

`r1hpc --dry-run DECK` checks a deck and prints it resolved: every key with its value and where that
came from (`default`, `FILE:LINE`, `preset FILE:LINE` or `--set ...`). A run keeps the same text as
`deck.resolved.ini` in its output directory.

## Checks before any compute

Every problem is reported before a rank allocates memory or writes a file, as
`r1hpc: error: DECK:LINE: [section] key = value: what is wrong (expected ...)`, with exit code 2.
A value from `--set` is located as `--set section.key=value`, one from a preset by the preset's file and
line, a default by the deck file alone.

- syntax: a line that is neither `[section]` nor `key = value`, a key above the first section;
- names: unknown sections and keys (with a did-you-mean), a key set twice in one file;
- values: wrong type, out of range, not one of an enum's words;
- layout (given the world size): tensor x pipeline must divide the world; `data`, when not 0, must equal
  world / (tensor x pipeline); `expert` must divide the routed experts and data x tensor (MoE layers
  spread experts over the data x tensor ranks); `tensor` must divide the heads; pipeline x
  virtual_stages must divide the layers, or the layers + 2 + mtp_depth with the embedding, the head and
  each MTP module counted as a layer (DeepSeek-V3: 61 + 3 = 64 on 16 stages), leaving every stage a
  layer; `interleaved` needs virtual_stages > 1 and virtual stages need `interleaved`; `dualpipev`
  cuts the model into 2 x pipeline chunks placed as a V (the same rule with 2 x pipeline) and needs at
  least 2 x pipeline micro-batches per step; `dualpipe` holds two copies of the pipeline stages (the
  rule with pipeline) and needs an even pipeline and an even number of at least 2 x pipeline
  micro-batches per step, in pretrain and sft only; `split_weight_grad` needs `dualpipev` or `dualpipe`
  over pipeline > 1;
- model: activated experts at most the routed ones and the ones in the kept groups, groups dividing
  the routed experts, kept groups at most the groups, dense layers at most the layers, an even RoPE
  dimension, `data.seq_len` at most `max_seq_len` (with `dense = true` the MoE keys are not checked);
- training: `global_batch` a multiple of micro_batch x data, `min_lr` at most `lr`;
- stage: the data, starting checkpoint or Hugging Face directory the stage needs;
- files: every input path named must exist;
- output: the checkpoint directory must not hold another run's checkpoints. A run is the same when the
  `deck.resolved.ini` in its output directory has the same `[run] stage` and `[model]` keys; with
  `[checkpoint] load = latest` the run resumes whatever is there;
- what the stage runs: import_hf and export_hf one rank; reward_model no tensor, pipeline or expert
  parallelism, even micro-batches and `[data] source = synthetic`; pipeline stages no MTP and untied
  embeddings; pretrain and grpo `[run] max_steps` > 0; grpo's prompts_per_step a multiple of the
  data-parallel replicas.

## Keys
)";

}  // namespace

std::string deck_reference_text() {
  std::ostringstream out;
  out << "r1hpc deck keys: [section] then key = value lines; override any key with --set section.key=value.\n"
         "Shown as: key = default, then type and range or choices, then what it does.\n";
  for (const SectionDecl& s : deck_sections()) {
    out << "\n[" << s.name << "]  " << s.doc << "\n";
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != s.name) continue;
      std::string head = "  " + std::string(k.key) + " = " + std::string(k.default_text);
      head.resize(std::max<std::size_t>(head.size() + 2, 36), ' ');
      out << head << type_text(k) << "\n      " << k.doc << "\n";
    }
  }
  return out.str();
}

std::string deck_reference_markdown() {
  std::ostringstream out;
  out << kMarkdownIntro;
  for (const SectionDecl& s : deck_sections()) {
    out << "\n### [" << s.name << "]\n\n" << s.doc << ".\n\n";
    out << "| key | type | default | range or values | description |\n|---|---|---|---|---|\n";
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != s.name) continue;
      const std::string def = k.default_text.empty() ? "(empty)" : detail::concat("`", k.default_text, "`");
      const std::string range = k.type == KeyType::choice ? choices_text(k, ", ") : k.range_text();
      out << "| `" << k.key << "` | " << key_type_name(k.type) << " | " << def << " | " << range << " | " << k.doc << " |\n";
    }
  }
  return out.str();
}

}  // namespace r1
