"""check_eval.py — raana-eval's output (a file) against reference.json's
held-out perplexity, within 1e-3 relative. Usage: check_eval.py REFERENCE OUTPUT"""
import json
import sys

ref = json.load(open(sys.argv[1]))["heldout_ppl"]
lines = dict(l.split(": ", 1) for l in open(sys.argv[2]).read().splitlines() if ": " in l)
got = float(lines["perplexity"])
ok = abs(got - ref["ppl"]) / ref["ppl"] < 1e-3 and int(lines["scored_tokens"]) == ref["scored_tokens"]
print(f"perplexity {got} (reference {ref['ppl']:.6f})")
sys.exit(0 if ok else 1)
