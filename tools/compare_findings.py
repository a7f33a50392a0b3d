"""Compare two findings JSON files (``--kready-json``) check by check: the verdicts, or with ``--content`` the
whole of each finding.

    python tools/compare_findings.py before.json after.json [--content]

A finding's key is (check id, target namespace with the run's own names normalised — also
bench_run.py readonly's ``bench-ro-<tag>-NNN`` — attack); the verdicts of the keys both files have are compared,
and keys only one file has are listed. Used to show that a change kept the verdicts of the reference profiles
(run the shipped suites before and after on the same cluster). ``--content`` also compares each finding's summary,
evidence, repro, remediation, references, request and response (what redaction and reporting produce), with the
names a run generates normalised (its namespaces, ``kready-<what>-<6 hex>`` pods and markers, absent names)."""
import argparse
import json
import re
from collections import Counter

CONTENT = ("verdict", "summary", "evidence", "repro", "remediation", "references", "request", "response")


def normalise(text: str) -> str:
    text = re.sub(r"\bkr-([a-z-]+?)-[0-9a-f]{8}-[0-9a-f]{6}[0-9a-z-]*", r"kr-\1-<run>", text)
    text = re.sub(r"\bbench-ro-[0-9a-f]+-", "bench-ro-<run>-", text)  # bench_run.py readonly's namespaces
    text = re.sub(r"\bkready-absent-[0-9a-z]+", "kready-absent-<name>", text)
    return re.sub(r"\bkready-[a-z0-9-]+?(?:-[0-9a-f]{6})+\b", "kready-<name>", text)


def key(f):
    ns = normalise(f.get("target_namespace") or "")
    return (f["check_id"], ns, (f.get("evidence") or {}).get("attack", "") if isinstance(f.get("evidence"), dict) else "")


def load(path, content):
    doc = json.load(open(path))
    out = {}
    for f in doc["findings"]:
        value = normalise(json.dumps({k: f.get(k) for k in CONTENT}, sort_keys=True)) if content else f["verdict"]
        out.setdefault(key(f), []).append(value)
    return {k: ("\n" if content else ",").join(sorted(v)) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--content", action="store_true", help="compare whole findings, not only verdicts")
    args = ap.parse_args()
    a, b = load(args.before, args.content), load(args.after, args.content)
    common = sorted(set(a) & set(b))
    diff = [(k, a[k], b[k]) for k in common if a[k] != b[k]]
    what = "content" if args.content else "verdicts"
    print(f"{args.before}: {len(a)} keys; {args.after}: {len(b)} keys; common {len(common)}; differing {len(diff)} "
          f"({what})")
    for k in sorted(set(a) - set(b)):
        print("  only before:", k, a[k][:200])
    for k in sorted(set(b) - set(a)):
        print("  only after: ", k, b[k][:200])
    for k, x, y in diff:
        i = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        print("  DIFF", k, x[max(0, i - 80):i + 80], "->", y[max(0, i - 80):i + 80])
    if not args.content:
        print("verdicts before", dict(Counter(a.values())), "after", dict(Counter(b.values())))


if __name__ == "__main__":
    main()
