"""test_tokenizer_vs_hf.py — raana's tokenizer against independent
implementations installed into tests/js by tests/run.sh, on at least 2,000
varied strings each (held-out verses; the fixture's test strings; variants
with digits, whitespace runs, tabs, newlines, accented Latin, Greek,
Cyrillic, CJK, emoji, added tokens; multi-line chunks); every string must
agree:
- SentencePiece style: the fixture's tokenizer.json, against Hugging Face's
  JavaScript tokenizers (@huggingface/tokenizers);
- byte-level style: a Llama-3 tokenizer.json built from the real Llama-3
  vocabulary and merges shipped by llama3-tokenizer-js, against both
  llama3-tokenizer-js itself and @huggingface/tokenizers.

Usage: test_tokenizer_vs_hf.py TOKENIZE_LINES SOURCE_DIR"""
import json
import os
import random
import subprocess
import sys
import tempfile


def varied_lines(fixture):
    verses = open(os.path.join(fixture, "heldout.txt"), encoding="utf-8").read().split("\n")
    tests = json.load(open(os.path.join(fixture, "tokenizer_tests.json")))["tests"]
    rng = random.Random(1234)
    extras = ["café", "naïve", "Ελληνικά", "Кириллица", "漢字かな", "한국어", "🙂👍🏽", "\t", "  ",
              "   ", "\n", "2024", "3.14159", "</s>", "<s>", "<unk>", "x²", "—", "«»", "\u00a0",
              "don't", "I'LL", "they've", "1234567", "\r\n", "<|eot_id|>", "e\u0301"]
    lines = [t["text"] for t in tests] + verses
    for i, v in enumerate(verses):
        words = v.split(" ")
        for _ in range(rng.randint(1, 4)):
            words.insert(rng.randint(0, len(words)), rng.choice(extras) if rng.random() < 0.7
                         else str(rng.randint(0, 10**rng.randint(1, 9))))
        sep = rng.choice([" ", "  ", " ", "\t", " \n "])
        lines.append(sep.join(words))
        if i % 5 == 0:
            lines.append("\n".join(verses[i:i + 5]))
    lines += ["", " ", "a", " leading", "trailing ", "   many   spaces   ", "\n\nnewlines\n"]
    return lines


def run_json(cmd):
    return json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)


def compare(what, lines, ours, theirs):
    agree = sum(a == b for a, b in zip(ours, theirs))
    for s, a, b in zip(lines, ours, theirs):
        if a != b:
            print(f"{what}: differs on {s!r}\n  raana {a}\n  other {b}")
            break
    ok = len(lines) >= 2000 and len(ours) == len(theirs) == len(lines) and agree == len(lines)
    print(f"{what}: {agree}/{len(lines)} strings agree")
    return ok


def main():
    tokenize_lines, src = sys.argv[1], sys.argv[2]
    fixture = os.path.join(src, "tests", "data", "kjv-tiny")
    js_dir = os.path.join(src, "tests", "js")
    for pkg in ("@huggingface/tokenizers", "llama3-tokenizer-js"):
        if not os.path.isdir(os.path.join(js_dir, "node_modules", pkg)):
            print(f"FAIL: {pkg} is not installed: run `npm ci --prefix tests/js`")
            print("test_tokenizer_vs_hf: 0 passed, 1 failed")
            return 1
    lines = varied_lines(fixture)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lines.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(lines, f, ensure_ascii=False)
        node = lambda script, *args: ["node", os.path.join(js_dir, script), *args]
        results.append(compare("kjv-tiny vs @huggingface/tokenizers", lines,
                               run_json([tokenize_lines, fixture, path]),
                               run_json(node("tokenize.mjs", fixture, path))))
        llama3 = os.path.join(tmp, "llama3")
        subprocess.run(node("make_llama3_tokenizer.mjs", llama3), check=True)
        ours = run_json([tokenize_lines, llama3, path])
        results.append(compare("llama-3 vs llama3-tokenizer-js", lines, ours,
                               run_json(node("tokenize_llama3js.mjs", path))))
        results.append(compare("llama-3 vs @huggingface/tokenizers", lines, ours,
                               run_json(node("tokenize.mjs", llama3, path))))
    passed = sum(results)
    print(f"test_tokenizer_vs_hf: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
