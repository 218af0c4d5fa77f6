// tokenize.mjs — Hugging Face's own JavaScript tokenizer (@huggingface/tokenizers)
// on a list of strings: prints one JSON array of id arrays (no special tokens
// added). Usage: node tokenize.mjs MODEL_DIR LINES.json
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "fs";

const [dir, linesFile] = process.argv.slice(2);
const tok = new Tokenizer(
  JSON.parse(fs.readFileSync(`${dir}/tokenizer.json`, "utf8")),
  JSON.parse(fs.readFileSync(`${dir}/tokenizer_config.json`, "utf8")),
);
const lines = JSON.parse(fs.readFileSync(linesFile, "utf8"));
process.stdout.write(JSON.stringify(lines.map((s) => tok.encode(s, { add_special_tokens: false }).ids)));
