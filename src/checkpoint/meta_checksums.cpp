#include "checkpoint/meta_checksums.hpp"

#include <nlohmann/json.hpp>

#include "checkpoint/integrity.hpp"
#include "core/error.hpp"

namespace r1::ckpt {

std::string int_text(const std::vector<std::int64_t>& values) { return nlohmann::json(values).dump(); }

MetaTexts meta_texts(const Meta& m) {
  return {{"format_version", int_text({m.format_version})},
          {"stage", m.stage},
          {"step", int_text({m.step})},
          {"tokens", int_text({m.tokens})},
          {"deck", m.deck},
          {"parent", m.parent},
          {"layout", m.layout.dump()},
          {"rng_state", m.rng_state.dump()},
          {"data_state", m.data_state.dump()},
          {"optimizer_state", m.optimizer_state.dump()},
          {"writers", int_text(m.writers)}};
}

std::string map_line(const std::string& name, const std::string& dtype, const std::vector<std::int64_t>& global,
                     const std::string& file, const std::string& dataset, const std::vector<std::int64_t>& start,
                     const std::vector<std::int64_t>& count) {
  return name + " " + dtype + " " + int_text(global) + " " + file + " " + dataset + " " + int_text(start) + " " + int_text(count) + "\n";
}

std::string meta_checksums(const MetaTexts& texts, const std::string& tensor_map) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, text] : texts) j[name] = checksum_text(text);
  j["tensor_map"] = checksum_text(tensor_map);
  return j.dump();
}

void check_meta_checksums(const MetaTexts& texts, const std::string* tensor_map, const std::string& checksums,
                          const std::filesystem::path& index) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(checksums);
  } catch (const nlohmann::json::exception&) {
    R1_FAIL(io, index.string(), ": attribute meta/checksums is damaged (not JSON): the file cannot be trusted");
  }
  if (!j.is_object()) R1_FAIL(io, index.string(), ": attribute meta/checksums is damaged (not a JSON object)");
  auto check = [&](const std::string& field, const std::string& text) {
    const auto it = j.find(field);
    if (it == j.end() || !it->is_string())
      R1_FAIL(io, index.string(), ": meta/checksums has no checksum of field '", field, "' (damaged)");
    const std::string computed = checksum_text(text);
    if (it->get<std::string>() != computed)
      R1_FAIL(io, index.string(), ": meta field '", field, "' does not match its checksum (stored ", it->get<std::string>(),
              ", computed ", computed, "): the file is damaged");
  };
  for (const auto& [name, text] : texts) check(name, text);
  if (tensor_map) check("tensor_map", *tensor_map);
}

}  // namespace r1::ckpt
