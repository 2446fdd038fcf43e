// Loading tokenizer.json / tokenizer_config.json, and the encode/decode pipelines (see
// tokenizer.h). Encode: added tokens split out of the raw text -> normalizer -> added tokens with
// normalized = true -> pre-tokenizer -> BPE, per piece, as in HF `tokenizers`.
#include "tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "util/atomic_file.h"

namespace fusecheck {

namespace {

using tok_json::json;

constexpr size_t kMaxTokenizerJson = size_t(256) << 20;  // the largest Hub files are ~35 MB
constexpr size_t kMaxConfigJson = size_t(16) << 20;

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// bos_token / eos_token: a string, null, or an AddedToken object {"content": ...}.
Result<std::string> special_token_text(const json& cfg, const char* key, const std::string& file) {
  const json* v = tok_json::find(cfg, key);
  if (!v) return std::string();
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return tok_json::get_string(*v, "content", file, key);
  return make_error("{}: expected a string or {{\"content\": ...}} at {}, found {}", file, key,
                    v->type_name());
}

// The ids a TemplateProcessing post-processor puts before the text ("single": [SpecialToken...,
// Sequence A, ...]), which is how Llama 3 files add BOS. Other post-processors add nothing first.
Result<std::vector<int32_t>> template_prefix(const json& pp, const std::string& file, int depth) {
  std::vector<int32_t> out;
  if (!pp.is_object() || depth > 4) return out;
  const json* type = tok_json::find(pp, "type");
  if (!type || !type->is_string()) return out;
  if (*type == "Sequence") {
    const json* list = tok_json::find(pp, "processors");
    if (list && list->is_array())
      for (const auto& p : *list) {
        FC_ASSIGN(ids, template_prefix(p, file, depth + 1));
        out.insert(out.end(), ids.begin(), ids.end());
      }
    return out;
  }
  if (*type != "TemplateProcessing") return out;
  const json* single = tok_json::find(pp, "single");
  const json* specials = tok_json::find(pp, "special_tokens");
  if (!single || !single->is_array()) return out;
  for (const auto& item : *single) {
    const json* st = tok_json::find(item, "SpecialToken");
    if (!st) break;  // the sequence itself: the prefix ends here
    FC_ASSIGN(name, tok_json::get_string(*st, "id", file, "post_processor.single[].SpecialToken"));
    const json* entry = specials ? tok_json::find(*specials, name.c_str()) : nullptr;
    const json* ids = entry ? tok_json::find(*entry, "ids") : nullptr;
    if (!ids || !ids->is_array())
      return make_error("{}: expected post_processor.special_tokens[\"{}\"].ids, found none", file,
                        printable(name));
    for (const auto& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        return make_error("{}: expected token ids in post_processor.special_tokens[\"{}\"].ids",
                          file, printable(name));
      out.push_back(int32_t(id.get<int64_t>()));
    }
  }
  return out;
}

Status load_tokenizer_json(const json& root, TokenizerImpl& t) {
  const std::string& f = t.json_path;
  if (!root.is_object())
    return make_error("{}: expected a JSON object (HF tokenizers format), found {}", f,
                      root.type_name());
  const json* model = tok_json::find(root, "model");
  if (!model || !model->is_object())
    return make_error("{}: expected an object at model, found {}", f,
                      model ? model->type_name() : "nothing");
  const json* vocab = tok_json::find(*model, "vocab");
  const json* added = tok_json::find(root, "added_tokens");
  size_t entries = (vocab && vocab->is_object() ? vocab->size() : 0) +
                   (added && added->is_array() ? added->size() : 0);
  // Ids may leave a few holes, but a table far larger than the file's entries is refused.
  auto max_id = int32_t(std::min<size_t>(size_t(1) << 24, 2 * entries + 65536));

  FC_ASSIGN(bpe, BpeModel::parse(*model, f, max_id));
  t.model = std::move(bpe);
  FC_ASSIGN(at, AddedTokens::parse(added ? *added : json(), f, max_id));
  t.added = std::move(at);
  FC_ASSIGN(norm, parse_normalizer(root.value("normalizer", json()), f));
  t.normalizer = std::move(norm);
  FC_ASSIGN(pre, parse_pre_tokenizer(root.value("pre_tokenizer", json()), f));
  t.pre_tokenizer = std::move(pre);
  FC_ASSIGN(dec, parse_decoder(root.value("decoder", json()), f));
  t.decoder = std::move(dec);
  t.vocab_size = std::max(t.model.size(), t.added.max_id() + 1);
  FC_ASSIGN(prefix, template_prefix(root.value("post_processor", json()), f, 0));
  t.prompt_prefix = std::move(prefix);
  for (int32_t id : t.prompt_prefix)
    if (id >= t.vocab_size)
      return make_error("{}: expected post_processor ids below the vocab size {}, found {}", f,
                        t.vocab_size, id);
  return ok_status();
}

Status load_config(const json& cfg, TokenizerImpl& t, const Tokenizer& tok) {
  const std::string& f = t.config_path;
  if (!cfg.is_object())
    return make_error("{}: expected a JSON object, found {}", f, cfg.type_name());
  FC_ASSIGN(bos, special_token_text(cfg, "bos_token", f));
  FC_ASSIGN(eos, special_token_text(cfg, "eos_token", f));
  if (!bos.empty()) {
    t.bos = tok.token_id(bos);
    if (!t.bos)
      return make_error(
          "{}: expected bos_token \"{}\" in the vocabulary of tokenizer.json, found "
          "it missing",
          f, printable(bos));
    t.bos_text = bos;
  }
  if (!eos.empty()) {
    auto id = tok.token_id(eos);
    if (!id)
      return make_error(
          "{}: expected eos_token \"{}\" in the vocabulary of tokenizer.json, found "
          "it missing",
          f, printable(eos));
    t.eos.push_back(*id);
  }
  // add_bos_token, when given, decides (transformers rewrites the post-processor from it).
  if (const json* add = tok_json::find(cfg, "add_bos_token")) {
    if (!add->is_boolean())
      return make_error("{}: expected true or false at add_bos_token, found {}", f,
                        add->type_name());
    t.prompt_prefix.clear();
    if (add->get<bool>() && t.bos) t.prompt_prefix.push_back(*t.bos);
  }
  std::string tmpl;
  if (const json* ct = tok_json::find(cfg, "chat_template")) {
    if (ct->is_string()) {
      tmpl = ct->get<std::string>();
    } else if (ct->is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const auto& e : *ct)
        if (tok_json::find(e, "name") && e["name"] == "default" && tok_json::find(e, "template") &&
            e["template"].is_string())
          tmpl = e["template"].get<std::string>();
    } else {
      return make_error("{}: expected a string at chat_template, found {}", f, ct->type_name());
    }
  }
  detect_chat_format(tmpl, t);
  return ok_status();
}

}  // namespace

Result<Tokenizer> Tokenizer::load(const std::string& dir) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->json_path = dir + "/tokenizer.json";
  auto text = read_small_file(impl->json_path, kMaxTokenizerJson);
  if (!text.ok())
    return make_error("{}; hint: DIR must hold the model's tokenizer.json (HF tokenizers format)",
                      text.error().message);
  try {
    {
      FC_ASSIGN(root, tok_json::parse(*text, impl->json_path));
      FC_TRY(load_tokenizer_json(root, *impl));
    }
    std::string cfg_path = dir + "/tokenizer_config.json";
    if (file_exists(cfg_path)) {
      impl->config_path = cfg_path;
      FC_ASSIGN(cfg_text, read_small_file(cfg_path, kMaxConfigJson));
      FC_ASSIGN(cfg, tok_json::parse(cfg_text, cfg_path));
      Tokenizer partial(impl);  // token_id() lookups for bos/eos, before the config is applied
      FC_TRY(load_config(cfg, *impl, partial));
    }
  } catch (const tok_json::json::exception& e) {
    // Every access is type-checked first; this is a backstop so a missed case is still an Error.
    return make_error("{}: unexpected JSON structure: {}", impl->json_path, printable(e.what()));
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  const TokenizerImpl& t = *impl_;
  std::vector<int32_t> ids;
  std::string s = utf8::sanitize(text);
  std::vector<Piece> pieces;
  for (auto& seg : t.added.split(s, false)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string norm = normalize(t.normalizer, seg.text);
    std::vector<Segment> inner;
    if (t.added.has_normalized())
      inner = t.added.split(norm, true);
    else
      inner.push_back({-1, std::move(norm), 0});
    for (auto& in : inner) {
      if (in.id >= 0) {
        ids.push_back(in.id);
        continue;
      }
      pieces.clear();
      pre_tokenize(t.pre_tokenizer, Piece{std::move(in.text), seg.offset == 0 && in.offset == 0},
                   pieces);
      for (const auto& p : pieces) t.model.tokenize(p.text, ids);
    }
  }
  return ids;
}

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  std::vector<int32_t> body = encode(text);
  const auto& prefix = impl_->prompt_prefix;
  if (!prefix.empty() &&
      std::equal(prefix.begin(), prefix.end(), body.begin(),
                 body.begin() + std::min(body.size(), prefix.size())) &&
      body.size() >= prefix.size())
    return body;  // the text already starts with BOS (a rendered chat): no second one
  std::vector<int32_t> ids(prefix);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string decode_ids(const TokenizerImpl& t, std::span<const int32_t> ids, bool skip_special,
                       bool raw) {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* a = t.added.by_id(id)) {
      if (!(skip_special && a->special)) tokens.push_back(a->content);
    } else if (const std::string* s = t.model.id_to_token(id)) {
      tokens.push_back(*s);
    }  // unknown ids are skipped, as `tokenizers` does
  }
  std::string out = decode_tokens(t.decoder, std::move(tokens), raw);
  return raw ? out : utf8::sanitize(out);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  return decode_ids(*impl_, ids, skip_special, false);
}

int32_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  if (const AddedToken* a = impl_->added.by_content(token)) return a->id;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::token(int32_t id) const {
  if (const AddedToken* a = impl_->added.by_id(id)) return a->content;
  if (const std::string* s = impl_->model.id_to_token(id)) return *s;
  return std::nullopt;
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos;
}
std::vector<int32_t> Tokenizer::eos_ids() const {
  return impl_->eos;
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* a = impl_->added.by_id(id);
  return a && a->special;
}

Result<std::string> Tokenizer::render_chat(std::span<const ChatMessage> msgs,
                                           const ChatOptions& opt) const {
  return fusecheck::render_chat(*impl_, msgs, opt);
}

}  // namespace fusecheck
