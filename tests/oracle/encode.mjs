// Reference encoder for fusecheck's tokenizer conformance test: encodes every string of a JSON
// array with @lenml/tokenizers (a port of transformers.js) and writes
// {"ids": [[...], ...], "nfc": [...]}: the ids of each string, and its NFC form (String.normalize)
// for the decode round-trip check.
//   node tests/oracle/encode.mjs ORACLE_DIR MODEL_DIR IN.json OUT.json
// ORACLE_DIR holds node_modules (scripts/setup_oracle.sh installs it); MODEL_DIR holds
// tokenizer.json and tokenizer_config.json. Special tokens in the text are matched, none added.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [oracleDir, modelDir, inPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node encode.mjs ORACLE_DIR MODEL_DIR IN.json OUT.json");
  process.exit(64);
}
// Resolve the package from ORACLE_DIR, not from this script's folder.
const require = createRequire(join(oracleDir, "package.json"));
const { TokenizerLoader } = await import(pathToFileURL(require.resolve("@lenml/tokenizers")).href);
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(join(modelDir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(readFileSync(join(modelDir, "tokenizer_config.json"), "utf8")),
});
const texts = JSON.parse(readFileSync(inPath, "utf8"));
const ids = texts.map((t) => Array.from(tok.encode(t, { add_special_tokens: false })));
const nfc = texts.map((t) => t.normalize("NFC"));
writeFileSync(outPath, JSON.stringify({ ids, nfc }));
