"""Compare the verdicts of two findings JSON files (``--kready-json``) check by check.

    python tools/compare_findings.py before.json after.json

A finding's key is (check id, target namespace with the run's own names normalised — also
bench_run.py readonly's ``bench-ro-<tag>-NNN`` — attack); the verdicts of
the keys both files have are compared, and keys only one file has are listed. Used to show that a change kept
the verdicts of the reference profiles (run the shipped suites before and after on the same cluster)."""
import json, re, sys
from collections import Counter

def key(f):
    ns = f.get("target_namespace") or ""
    ns = re.sub(r"^kr-([a-z-]+?)-[0-9a-f]{8}-[0-9a-f]{6}.*$", r"kr-\1-<run>", ns)
    ns = re.sub(r"^bench-ro-[0-9a-f]+-", "bench-ro-<run>-", ns)  # bench_run.py readonly's namespaces
    return (f["check_id"], ns, (f.get("evidence") or {}).get("attack", "") if isinstance(f.get("evidence"), dict) else "")

def load(p):
    doc = json.load(open(p))
    out = {}
    for f in doc["findings"]:
        out.setdefault(key(f), []).append(f["verdict"])
    return {k: ",".join(sorted(v)) for k, v in out.items()}

a, b = load(sys.argv[1]), load(sys.argv[2])
common = sorted(set(a) & set(b))
diff = [(k, a[k], b[k]) for k in common if a[k] != b[k]]
print(f"{sys.argv[1]}: {len(a)} keys; {sys.argv[2]}: {len(b)} keys; common {len(common)}; differing {len(diff)}")
for k in sorted(set(a) - set(b)): print("  only before:", k, a[k])
for k in sorted(set(b) - set(a)): print("  only after: ", k, b[k])
for k, x, y in diff: print("  DIFF", k, x, "->", y)
print("verdicts before", dict(Counter(a.values())), "after", dict(Counter(b.values())))
