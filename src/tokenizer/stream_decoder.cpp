// Streaming decoder. Each push decodes a small window (the last emitted token for context, plus
// the tokens not yet emitted) twice, with and without the new tokens, and emits the difference once
// it does not end inside a UTF-8 sequence; the decoders' per-token and start-of-text rules (Strip,
// Metaspace) then act the same in both decodes, so the pieces add up to decode() of all ids.
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace fusecheck {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  std::string before =
      decode_ids(tok_.impl(), all.subspan(prefix_, read_ - prefix_), skip_special_, true);
  std::string now = decode_ids(tok_.impl(), all.subspan(prefix_), skip_special_, true);
  if (now.size() <= before.size() || now.compare(0, before.size(), before) != 0) return {};
  std::string_view fresh = std::string_view(now).substr(before.size());
  if (utf8::incomplete_tail(fresh) != fresh.size()) return {};  // wait for the rest of a character
  prefix_ = read_;
  read_ = ids_.size();
  return utf8::sanitize(fresh);
}

std::string StreamDecoder::flush() {
  std::span<const int32_t> all(ids_);
  std::string before =
      decode_ids(tok_.impl(), all.subspan(prefix_, read_ - prefix_), skip_special_, true);
  std::string now = decode_ids(tok_.impl(), all.subspan(prefix_), skip_special_, true);
  prefix_ = read_ = ids_.size();
  if (now.size() <= before.size() || now.compare(0, before.size(), before) != 0) return {};
  return utf8::sanitize(std::string_view(now).substr(before.size()));
}

}  // namespace fusecheck
