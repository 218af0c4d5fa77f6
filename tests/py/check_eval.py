"""check_eval.py — raana-eval's text output (a file) against reference.json's
held-out perplexity: the original perplexity within 1e-3 relative and the
scored tokens exactly. Usage: check_eval.py REFERENCE OUTPUT"""
import json
import re
import sys

ref = json.load(open(sys.argv[1]))["heldout_ppl"]
text = open(sys.argv[2]).read()
ppl = re.search(r"^original perplexity: ([0-9.]+) \u00b1 ([0-9.]+)$", text, re.M)
windows = re.search(r"^windows: (\d+) of (\d+) tokens \(stride (\d+)\), scored tokens: (\d+)$",
                    text, re.M)
if not ppl or not windows:
    sys.exit(f"unexpected output: {text}")
got = float(ppl.group(1))
ok = abs(got - ref["ppl"]) / ref["ppl"] < 1e-3 and int(windows.group(4)) == ref["scored_tokens"]
ok = ok and int(windows.group(1)) == ref["windows"]
print(f"perplexity {got} (reference {ref['ppl']:.6f})")
sys.exit(0 if ok else 1)
