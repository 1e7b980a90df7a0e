"""Turn a pytest-benchmark JSON file into ratio tables (speed relative to each peer).

    python -m pytest bench/test_scheduler.py --benchmark-json=/tmp/b.json
    python bench/report.py /tmp/b.json

For each group (one workload), prints the median time of every implementation and pysplay's
speed-up over each peer (peer median / pysplay median; above 1 means pysplay is faster).
"""
import json
import sys


def tables(path, ours="splay"):
    data = json.load(open(path))
    groups = {}
    for b in data["benchmarks"]:
        impl = b.get("extra_info", {}).get("impl") or b["name"]
        groups.setdefault(b["group"], {})[impl] = b["stats"]["median"]
    lines = []
    for group, meds in groups.items():
        if ours not in meds:
            continue
        mine = meds[ours]
        cells = [f"{impl} {med * 1000:.1f} ms" + ("" if impl == ours else f" (x{med / mine:.2f})")
                 for impl, med in sorted(meds.items(), key=lambda kv: kv[1])]
        lines.append(f"| {group} | " + " · ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    ours = sys.argv[2] if len(sys.argv) > 2 else "splay"
    print("| workload | median time (pysplay's speed-up over the peer) |")
    print("|---|---|")
    print(tables(sys.argv[1], ours))
