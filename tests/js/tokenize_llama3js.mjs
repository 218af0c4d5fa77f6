// tokenize_llama3js.mjs — llama3-tokenizer-js (its own BPE implementation and
// data) on a list of strings: one JSON array of id arrays, no bos/eos.
// Usage: node tokenize_llama3js.mjs LINES.json
import llama3Tokenizer from "llama3-tokenizer-js";
import fs from "fs";

const lines = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
process.stdout.write(JSON.stringify(lines.map((s) => llama3Tokenizer.encode(s, { bos: false, eos: false }))));
