// make_llama3_tokenizer.mjs — writes a Hugging Face tokenizer.json (and
// tokenizer_config.json) for Llama-3 built from the vocabulary and merges that
// llama3-tokenizer-js ships, in the layout of Meta's release: Split with
// Llama-3's regex + ByteLevel, BPE with ignore_merges, 256 special tokens,
// <|begin_of_text|> as bos. Usage: node make_llama3_tokenizer.mjs OUT_DIR
import llama3Tokenizer from "llama3-tokenizer-js";
import fs from "fs";

const out = process.argv[2];
const t = llama3Tokenizer;
const vocab = {};
const added = [];
t.vocabById.forEach((piece, id) => {
  if (id < 128000) vocab[piece] = id;
  else added.push({ id, content: piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
});
const merges = [...t.merges.entries()].sort((a, b) => a[1] - b[1]).map(([pair]) => pair);
const bos = "<|begin_of_text|>";
const json = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: added,
  normalizer: null,
  pre_tokenizer: {
    type: "Sequence",
    pretokenizers: [
      {
        type: "Split",
        pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
        behavior: "Isolated",
        invert: false,
      },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  },
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { [bos]: { id: bos, ids: [128000], tokens: [bos] } },
  },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
};
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(`${out}/tokenizer.json`, JSON.stringify(json));
fs.writeFileSync(`${out}/tokenizer_config.json`, JSON.stringify({ bos_token: bos, eos_token: "<|end_of_text|>", tokenizer_class: "PreTrainedTokenizerFast" }));
