#include "config/run_config.hpp"

#include <algorithm>
#include <initializer_list>
#include <utility>

namespace r1 {

namespace {

// The sections in the order they are documented: member of RunConfig (and section name), doc, keys.
#define R1_SECTIONS(SECTION)                                                                                            \
  SECTION(run, "what this job runs and where its outputs go", R1_RUN_KEYS)                                              \
  SECTION(model, "model architecture (DeepSeek-V3 family or a Llama/Qwen student), usually from a preset",            \
          R1_MODEL_KEYS)                                                                                                \
  SECTION(parallel, "layout of the ranks: world = pipeline x data x tensor; MoE layers fold expert over data x tensor", \
          R1_PARALLEL_KEYS)                                                                                             \
  SECTION(data, "training and evaluation data", R1_DATA_KEYS)                                                           \
  SECTION(optim, "AdamW and the learning-rate schedule", R1_OPTIM_KEYS)                                                 \
  SECTION(train, "batching, precision and cadence of the training stages", R1_TRAIN_KEYS)                               \
  SECTION(sft, "supervised fine-tuning (cold start, reasoning SFT, distillation)", R1_SFT_KEYS)                         \
  SECTION(grpo, "GRPO reinforcement learning", R1_GRPO_KEYS)                                                            \
  SECTION(reward, "rewards of grpo: rule-based checks and an optional reward model", R1_REWARD_KEYS)                    \
  SECTION(reward_model, "the reward_model stage", R1_REWARD_MODEL_KEYS)                                                 \
  SECTION(sampling, "generation for rollouts, rejection sampling and evaluation", R1_SAMPLING_KEYS)                     \
  SECTION(rejection, "the rejection_sampling stage, which writes an SFT dataset", R1_REJECTION_KEYS)                    \
  SECTION(evaluate, "the evaluate stage", R1_EVALUATE_KEYS)                                                             \
  SECTION(hf, "the import_hf and export_hf stages", R1_HF_KEYS)                                                         \
  SECTION(checkpoint, "where checkpoints go and which one the run starts from", R1_CHECKPOINT_KEYS)                     \
  SECTION(log, "logging, metrics and profiling", R1_LOG_KEYS)

// Stores a key's value, which the deck parsed and checked as the key declares, into its member.
void store(std::int64_t& member, const KeyValue& v) { member = std::get<std::int64_t>(v); }
void store(double& member, const KeyValue& v) { member = std::get<double>(v); }
void store(bool& member, const KeyValue& v) { member = std::get<bool>(v); }
void store(std::string& member, const KeyValue& v) { member = std::get<std::string>(v); }
void store(std::vector<std::int64_t>& member, const KeyValue& v) { member = std::get<std::vector<std::int64_t>>(v); }
template <class E> requires std::is_enum_v<E> void store(E& member, const KeyValue& v) {
  const std::string& word = std::get<std::string>(v);
  for (const ChoiceWord<E>& c : choice_words(E{}))
    if (c.word == word) {
      member = c.value;
      return;
    }
  R1_FAIL(internal, "choice '", word, "' names no value of its enum");
}

template <auto Section, auto Member> void assign(RunConfig& config, const KeyValue& v) { store(config.*Section.*Member, v); }

// The key a member binds to: its name without the _ that a member named like a C++ keyword ends in.
constexpr std::string_view key_of(std::string_view member) {
  return member.ends_with('_') ? member.substr(0, member.size() - 1) : member;
}

std::string default_choice(const char* word) { return word; }
template <class E> requires std::is_enum_v<E> std::string default_choice(E value) { return std::string(choice_word(value)); }
std::string default_ints(const std::vector<std::int64_t>& values) {
  std::string text;
  for (std::int64_t v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
  return text;
}

struct NoRange {};

// Adds the keys of one section, each bound to member M of the section struct at member S of RunConfig.
class Binder {
 public:
  Binder(std::vector<KeyDecl>& out, std::string_view section) : out_(out), section_(section) {}

  template <auto S, auto M>
  void integer(std::string_view key, std::string def, std::string_view doc, std::pair<std::int64_t, std::int64_t> range) {
    KeyDecl& d = add<S, M>(key, KeyType::integer, std::move(def), doc);
    d.imin = range.first;
    d.imax = range.second;
  }
  template <auto S, auto M>
  void real(std::string_view key, std::string def, std::string_view doc, std::pair<double, double> range) {
    KeyDecl& d = add<S, M>(key, KeyType::real, std::move(def), doc);
    d.fmin = range.first;
    d.fmax = range.second;
  }
  template <auto S, auto M>
  void ints(std::string_view key, std::string def, std::string_view doc, std::pair<std::int64_t, std::int64_t> range) {
    KeyDecl& d = add<S, M>(key, KeyType::int_list, std::move(def), doc);
    d.imin = range.first;
    d.imax = range.second;
  }
  template <auto S, auto M> void flag(std::string_view key, std::string def, std::string_view doc, NoRange) {
    add<S, M>(key, KeyType::boolean, std::move(def), doc);
  }
  template <auto S, auto M> void text(std::string_view key, std::string def, std::string_view doc, NoRange) {
    add<S, M>(key, KeyType::string, std::move(def), doc);
  }
  template <auto S, auto M> void path(std::string_view key, std::string def, std::string_view doc, NoRange) {
    add<S, M>(key, KeyType::path, std::move(def), doc);
  }
  template <auto S, auto M> void input(std::string_view key, std::string def, std::string_view doc, NoRange) {
    add<S, M>(key, KeyType::input_path, std::move(def), doc);
  }
  // An enum member offers the words of its choice_words (all of them, in order, when `words` is empty).
  template <auto S, auto M>
  void choice(std::string_view key, std::string def, std::string_view doc, std::initializer_list<std::string_view> words) {
    KeyDecl& d = add<S, M>(key, KeyType::choice, std::move(def), doc);
    d.choices = words;
    using Member = std::remove_cvref_t<decltype(RunConfig{}.*S.*M)>;
    if constexpr (std::is_enum_v<Member>) {
      const std::vector<std::string_view> all = choice_word_list<Member>();
      if (d.choices.empty()) d.choices = all;
      for (std::string_view w : d.choices)
        R1_CHECK(std::find(all.begin(), all.end(), w) != all.end(), d.full_name(), ": '", w, "' is no word of its enum");
    }
    R1_CHECK(std::find(d.choices.begin(), d.choices.end(), d.default_text) != d.choices.end(), d.full_name(),
             ": default not offered");
  }

 private:
  template <auto S, auto M> KeyDecl& add(std::string_view key, KeyType type, std::string def, std::string_view doc) {
    KeyDecl& d = out_.emplace_back();
    d.section = section_;
    d.key = key;
    d.type = type;
    d.default_text = std::move(def);
    d.doc = doc;
    d.assign = &assign<S, M>;
    return d;
  }
  std::vector<KeyDecl>& out_;
  std::string_view section_;
};

// One key line of a section's list: KEY(kind, member, default, range, doc) (config/keys.hpp).
#define R1_UNPAREN(...) __VA_ARGS__
#define R1_DEFAULT_TEXT_integer(def) #def
#define R1_DEFAULT_TEXT_real(def) #def
#define R1_DEFAULT_TEXT_flag(def) #def
#define R1_DEFAULT_TEXT_text(def) def
#define R1_DEFAULT_TEXT_path(def) def
#define R1_DEFAULT_TEXT_input(def) def
#define R1_DEFAULT_TEXT_choice(def) default_choice(def)
#define R1_DEFAULT_TEXT_ints(def) default_ints(std::vector<std::int64_t> def)
#define R1_BIND(kind, member, def, range, doc) \
  keys.kind<kSection, &Section::member>(key_of(#member), R1_DEFAULT_TEXT_##kind(def), doc, {R1_UNPAREN range});
#define R1_SECTION_KEYS(member, doc, KEYS)        \
  {                                               \
    constexpr auto kSection = &RunConfig::member; \
    using Section = decltype(RunConfig::member);  \
    Binder keys(out, #member);                    \
    KEYS(R1_BIND)                                 \
  }
#define R1_SECTION_DECL(member, doc, KEYS) {#member, doc},

std::vector<KeyDecl> bind_keys() {
  std::vector<KeyDecl> out;
  R1_SECTIONS(R1_SECTION_KEYS)
  return out;
}

}  // namespace

const std::vector<SectionDecl>& deck_sections() {
  static const std::vector<SectionDecl> sections = {R1_SECTIONS(R1_SECTION_DECL)};
  return sections;
}

const std::vector<KeyDecl>& deck_keys() {
  static const std::vector<KeyDecl> keys = bind_keys();
  return keys;
}

void derive_fields(RunConfig& c) {
  c.model.normalize_gates = c.model.score_func == RouterScore::sigmoid;
  c.grpo.adv_scale = !c.grpo.adv_std_scale                          ? AdvScale::none
                     : c.grpo.adv_std_scope == AdvStdScope::batch ? AdvScale::batch_std
                                                                  : AdvScale::group_std;
  c.grpo.max_completion_tokens = c.sampling.max_new_tokens;
}

std::filesystem::path checkpoint_dir(const RunConfig& c) {
  return c.checkpoint.dir.empty() ? std::filesystem::path(c.run.output_dir) / "checkpoints"
                                  : std::filesystem::path(c.checkpoint.dir);
}

}  // namespace r1
