// HfDecoder: Hugging Face's decoders read from tokenizer.json: ByteLevel, and for SentencePiece-style
// vocabularies Metaspace or a Sequence of Replace / ByteFallback / Fuse / Strip.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace r1 {

class HfDecoder {
 public:
  HfDecoder() = default;
  // j: the "decoder" value; where: file and JSON path.
  static HfDecoder from_json(const nlohmann::json& j, const std::string& where);

  // ByteLevel: the tokens are raw bytes (r1hpc stores byte-level tokens decoded), joined as they are.
  bool byte_level() const { return byte_level_; }
  // The text of a token sequence. Byte-fallback tokens (<0xAB>) become their raw bytes, even where they
  // do not form valid UTF-8 (`tokenizers` writes U+FFFD there), so that every input round-trips.
  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { replace, byte_fallback, fuse, strip, metaspace };
  struct Step {
    Kind kind;
    std::string pattern, content;  // replace; strip: content; metaspace: pattern = the replacement
    std::size_t start = 0, stop = 0;
    bool prepend = true;  // metaspace: prepend_scheme is not "never"
  };
  void parse(const nlohmann::json& j, const std::string& where);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace r1
