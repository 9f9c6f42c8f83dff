"""One-off conversion of the golden files written before golden_schema.py into its schema,
number for number (JSON floats read and written back by Python round-trip exactly; the only
values computed are the sums and means of preference-layout files, by the same float64
operations the earlier reader did).

    python tests/golden/gen/convert_v1.py tests/golden

Converts every <family>/<id>.json in place; files already in the schema are left alone.
Preference-layout files of the RL losses move to rl/.
"""

import json
import os
import sys

from golden_schema import dump, v1_cross_entropy, v1_cut_cross_entropy, v1_reductions, v1_rows

RL = {"grpo", "ppo_clip", "steer"}
BATCH_LEVEL_ROWS = {"aot"}


def versions_of(doc):
    if "versions" in doc:
        return doc["versions"]
    v = {k: doc[k] for k in ("jax", "numpy") if k in doc}
    if v:
        return v
    # "tests/golden/gen/preference.py (jax 0.10.2, numpy 2.4.6, float64)"
    gen = doc.get("generator", "")
    out = {}
    if "(" in gen:
        for part in gen[gen.index("(") + 1:gen.rindex(")")].split(","):
            words = part.split()
            if len(words) == 2 and words[0] in ("jax", "numpy"):
                out[words[0]] = words[1]
    return out


def generator_of(doc):
    gen = doc.get("generator", "")
    return gen.split(" (")[0]


def convert(path, family, id_):
    with open(path) as f:
        doc = json.load(f)
    cases = doc["cases"]
    if cases and "calls" in cases[0]:
        return None
    if id_ == "cross_entropy":
        new = [v1_cross_entropy(c) for c in cases]
    elif id_ == "cut_cross_entropy":
        new = [v1_cut_cross_entropy(c) for c in cases]
    elif "grads_sum" in cases[0]:
        new = [v1_rows(c, id_ in BATCH_LEVEL_ROWS) for c in cases]
    else:
        new = [v1_reductions(c) for c in cases]
    out = {"id": id_, "generator": generator_of(doc), "versions": versions_of(doc),
           "cases": new}
    if id_ in RL:
        family = "rl"
    return family, out


def main(root):
    for family in sorted(os.listdir(root)):
        d = os.path.join(root, family)
        if family == "gen" or not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(d, name)
            r = convert(path, family, name[:-5])
            if r is None:
                continue
            fam, doc = r
            os.makedirs(os.path.join(root, fam), exist_ok=True)
            dst = os.path.join(root, fam, name)
            dump(doc, dst)
            if dst != path:
                os.remove(path)
            print(f"{path} -> {dst}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden")
