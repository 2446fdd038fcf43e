// The configurable stages of a `tokenizers` pipeline, parsed from tokenizer.json and driven by it
// (never by model name): normalizer, pre-tokenizer and decoder. Each stage is a flat list of steps
// (a "Sequence" in the JSON becomes its members in order). Unknown types are errors naming the
// type.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "util/result.h"

namespace fusecheck {

// ---- normalizer ---------------------------------------------------------------------------------
struct NormalizerStep {
  enum Kind { kNFC, kNFD, kNFKC, kNFKD, kPrepend, kReplace } kind;
  std::string a, b;  // Prepend: a = text; Replace: a = pattern (literal), b = content
};
using Normalizer = std::vector<NormalizerStep>;

Result<Normalizer> parse_normalizer(const tok_json::json& j, const std::string& file);
// Applies every step in order to valid UTF-8 text.
std::string normalize(const Normalizer& n, std::string_view text);

// ---- pre-tokenizer ------------------------------------------------------------------------------
// A piece of text on its way to the model. at_start: the piece begins at offset 0 of the input
// (Metaspace's prepend_scheme "first" prepends only there).
struct Piece {
  std::string text;
  bool at_start = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
enum class PrependScheme { kFirst, kAlways, kNever };

struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind;
  // Split
  std::shared_ptr<const Regex> regex;  // null: `literal` is the pattern
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // ByteLevel
  bool add_prefix_space = false, use_regex = true;
  // Metaspace
  std::string replacement = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool split = true;
};
using PreTokenizer = std::vector<PreTokenizerStep>;

Result<PreTokenizer> parse_pre_tokenizer(const tok_json::json& j, const std::string& file);
// Splits one (normalized) piece into the words the model encodes; appends them to `out`.
void pre_tokenize(const PreTokenizer& p, Piece piece, std::vector<Piece>& out);

// GPT-2's byte <-> unicode table: every byte gets a printable code point (ByteLevel).
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_utf8;  // the mapped character of each byte, as UTF-8
  std::array<int16_t, 512> cp_to_byte;        // code point -> byte, or -1
  ByteLevelTable();
};
const ByteLevelTable& byte_level_table();

// ---- decoder ------------------------------------------------------------------------------------
struct DecoderStep {
  enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
  std::string a, b;  // Replace: a = pattern, b = content; Strip: a = content; Metaspace: a = repl.
  int start = 0, stop = 0;
  PrependScheme prepend_scheme = PrependScheme::kAlways;
};
struct Decoder {
  bool present = false;  // no decoder: tokens are joined with " " (as `tokenizers` does)
  std::vector<DecoderStep> steps;
};

Result<Decoder> parse_decoder(const tok_json::json& j, const std::string& file);
// Turns token strings into bytes. raw = true keeps bytes that are not valid UTF-8 as they are (the
// streaming decoder repairs them once it knows they are incomplete); raw = false applies the
// `tokenizers` repairs (ByteFallback: one U+FFFD per byte of an invalid group).
std::string decode_tokens(const Decoder& d, std::vector<std::string> tokens, bool raw);

// Replaces every occurrence of `from` (non-empty) in `s`, left to right, as the `tokenizers`
// Replace normalizer and decoder do with a string pattern.
void replace_all(std::string& s, const std::string& from, const std::string& to);

}  // namespace fusecheck
