"""Codec benchmarks: pysplay's benc against msgspec (msgpack), orjson, fastbencode, bencode.py,
msgpack, json and pickle.

The documents, each encoded and decoded by every library that supports it, in the same run:
  rpc        a typical RPC request and its reply (WIRE.md shapes: a call with a node and an id)
  torrent    a ~1 MB torrent-like document (binary piece hashes, a file list)
  dicts      a list of 10,000 small dicts (a node table)
  request    issue #17: the rpcq request {"type": "call", "call": ["concat", "one", "two"], "n": 7}
  nodes200   issue #17: 200 node dicts {ip, port, id} (a node list an RPC returns)
  fingers32  issue #17: a 32-entry Chord finger table (a list of node dicts)
  bytes64k   issue #17: a 64 KiB bytes value with an integer beyond 2**63
  reply      an rpcq reply carrying a node and a hop count {"reply": [node, 4], "n": 12}
orjson (and json, for bytes64k) has no bytes type and is left out of the documents with binary
values.

Each library gets the document in the form it supports: the bencode libraries (standard bencode
only) get byte-string keys and values; json gets the torrent's binary hashes as hex text. Decoding
with pysplay's benc gives str for text (raw=False) except for the torrent (raw=True, as BitTorrent
data is read), so it does at least the work the others do.

Run (see bench/RESULTS-codecs.md):
    python -m pytest bench/test_codecs.py --benchmark-only --benchmark-json=/tmp/codecs.json
    python bench/test_codecs.py /tmp/codecs.json        # prints the ratio table
    python bench/test_codecs.py --msgspec /tmp/codecs.json # issue #17: msgspec ÷ pysplay
    python bench/test_codecs.py --callgrind                # issue #17 in instructions per call
    python bench/test_codecs.py --rpc-callgrind            # benc's instructions per rpcq call
    python bench/test_codecs.py --callgrind-layouts encode bytes64k   # the same in 4 heap layouts
    python bench/test_codecs.py --copy-distances [SIZE SRC_OFFSET]   # 4 KiB aliasing (quiet machine)
    python bench/test_codecs.py --alternate bytes64k [ROUNDS]        # one process, alternating
Instruction counts (noise-free), one operation repeated N times, minus N=0:
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python bench/test_codecs.py --one encode dicts pysplay 10
"""
import functools
import json
import os
import pickle
import random
import statistics
import sys

import pytest

try:
    import bencode as bencode_py
    import fastbencode
    import msgpack
    import msgspec
    import orjson
except ImportError:       # the bench extra: pip install pysplay[bench]
    pytest.skip("needs fastbencode, bencode.py, msgpack, msgspec and orjson", allow_module_level=True)

from splay import benc


def _to_bytes(value):
    """The standard-bencode form of a document: every str as UTF-8 bytes, bools as ints."""
    if isinstance(value, dict):
        return {_to_bytes(k): _to_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_bytes(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return int(value)
    return value


def _rpc_documents():
    request = {"type": "call", "call": ["find_successor", {"ip": "127.0.0.1", "port": 20001},
                                        "8f14e45fceea167a5a36dedd4bea2543e6f2c5b1"]}
    reply = [{"ip": "127.0.0.1", "port": 20017, "id": 7331689402274583026}]
    return [request, reply]


def _torrent_document():
    rng = random.Random(7)
    pieces = rng.randbytes(20 * 40000)                                  # 800 kB of hashes
    files = [{"length": rng.randrange(1, 1 << 30), "path": ["data", f"dir{i % 37}", f"file{i}.bin"]}
             for i in range(3000)]
    return {"announce": "http://tracker.example.org:6969/announce",
            "announce-list": [["http://tracker.example.org:6969/announce"], ["udp://t2:80"]],
            "creation date": 1700000000, "comment": "benchmark document",
            "info": {"name": "dataset", "piece length": 262144, "pieces": pieces, "files": files}}


def _dicts_document():
    return [{"id": i, "ip": f"10.0.{i // 256}.{i % 256}", "port": 20000 + i, "name": f"node{i}",
             "alive": i % 3 != 0} for i in range(10000)]


def _hex_pieces(doc):
    doc = dict(doc)
    doc["info"] = dict(doc["info"], pieces=doc["info"]["pieces"].hex())
    return doc


def _node(rng, i):
    return {"ip": f"10.0.{i // 256}.{i % 256}", "port": 20000 + i, "id": rng.getrandbits(32)}


def _issue17_documents():
    rng = random.Random(17)
    return {
        "request": {"type": "call", "call": ["concat", "one", "two"], "n": 7},
        "nodes200": [_node(rng, i) for i in range(200)],
        "fingers32": [_node(rng, i) for i in range(32)],
        "bytes64k": {"data": rng.randbytes(65536), "offset": 2 ** 64 - 12345},
        "reply": {"reply": [_node(rng, 1), 4], "n": 12},
    }


# Documents are built on first use, so that `--one` (under callgrind) builds only its own.
_BUILDERS = {"rpc": _rpc_documents, "torrent": _torrent_document, "dicts": _dicts_document,
             **{name: (lambda name=name: _issue17_documents()[name])
                for name in ("request", "nodes200", "fingers32", "bytes64k", "reply")}}
DOCS = list(_BUILDERS)


@functools.cache
def _document(case):
    return _BUILDERS[case]()

_MSGSPEC_ENCODER = msgspec.msgpack.Encoder()
_MSGSPEC_DECODER = msgspec.msgpack.Decoder()

# library -> (encode, decode, form of the document)
LIBS = {
    "pysplay": (benc.encode, benc.decode, lambda d: d),
    "msgspec": (_MSGSPEC_ENCODER.encode, _MSGSPEC_DECODER.decode, lambda d: d),
    "orjson": (orjson.dumps, orjson.loads, lambda d: d),
    "fastbencode": (fastbencode.bencode, fastbencode.bdecode, _to_bytes),
    "bencode.py": (bencode_py.encode, bencode_py.decode, _to_bytes),
    "msgpack": (msgpack.packb, msgpack.unpackb, lambda d: d),
    "json": (lambda v: json.dumps(v).encode(), json.loads, lambda d: d),
    "pickle": (lambda v: pickle.dumps(v, protocol=5), pickle.loads, lambda d: d),
}


def _supported(lib, case):
    """orjson and json have no bytes type (json gets the torrent's hashes as hex text, but the
    bytes64k document is about carrying a binary value)."""
    return not ((lib == "orjson" and case in ("torrent", "bytes64k"))
                or (lib == "json" and case == "bytes64k"))


def _form(lib, case):
    doc = _document(case)
    if lib == "json" and case == "torrent":
        doc = _hex_pieces(doc)
    return LIBS[lib][2](doc)


def _decoder(lib, case):
    if lib == "pysplay" and case == "torrent":
        return lambda data: benc.decode(data, raw=True)
    return LIBS[lib][1]


def _rounds(case):
    # enough iterations per round that timer resolution does not matter for the tiny rpc case
    return {"rpc": 2000, "torrent": 1, "dicts": 1, "request": 2000, "reply": 2000, "fingers32": 100,
            "nodes200": 10, "bytes64k": 50}[case]


def copy_distances_of(lib, case="bytes64k", data=None):
    """For a document with one large bytes value: the distances modulo 4 KiB from each copy's
    source to its destination in one more call of `lib` (encode: the value's payload to its place
    in the result; decode of `data`, the encoded document a benchmark decodes: its payload to the
    new bytes object's), as (encode, decode). They decide whether the copy meets 4 KiB aliasing
    (csrc/large_copy.h); the allocator picks them."""
    form = _form(lib, case)
    (value,) = [v for v in form.values() if isinstance(v, bytes)]
    result = LIBS[lib][0](form)
    encoded = (id(result) + result.index(value[:64]) - id(value)) % 4096
    data = result if data is None else data
    (decoded_value,) = [v for v in _decoder(lib, case)(data).values() if isinstance(v, bytes)]
    decoded = (id(decoded_value) - id(data) - data.index(value[:64])) % 4096
    return encoded, decoded


@pytest.mark.parametrize("lib", list(LIBS))
@pytest.mark.parametrize("case", list(DOCS))
def test_encode(benchmark, case, lib):
    benchmark.group = f"encode {case}"
    if not _supported(lib, case):
        pytest.skip(f"{lib} cannot carry the {case} document")
    encode = LIBS[lib][0]
    doc = _form(lib, case)
    n = _rounds(case)

    def run():
        for _ in range(n):
            encode(doc)
    benchmark.pedantic(run, rounds=30 if _rounds(case) == 1 else 20, warmup_rounds=2)
    benchmark.extra_info["per_call_divisor"] = n
    if case == "bytes64k":
        benchmark.extra_info["copy_distance"] = copy_distances_of(lib, case)[0]


@pytest.mark.parametrize("lib", list(LIBS))
@pytest.mark.parametrize("case", list(DOCS))
def test_decode(benchmark, case, lib):
    benchmark.group = f"decode {case}"
    if not _supported(lib, case):
        pytest.skip(f"{lib} cannot carry the {case} document")
    data = LIBS[lib][0](_form(lib, case))
    decode = _decoder(lib, case)
    n = _rounds(case)
    assert decode(data) is not None

    def run():
        for _ in range(n):
            decode(data)
    benchmark.pedantic(run, rounds=30 if _rounds(case) == 1 else 20, warmup_rounds=2)
    benchmark.extra_info["per_call_divisor"] = n
    if case == "bytes64k":
        benchmark.extra_info["copy_distance"] = copy_distances_of(lib, case, data)[1]


def test_documents_agree():
    """Every library round-trips its form of every document (the benchmark measures real work)."""
    for case in DOCS:
        for lib, (encode, _, _) in LIBS.items():
            if not _supported(lib, case):
                continue
            wire = encode(_form(lib, case))
            assert encode(_decoder(lib, case)(wire)) == wire, (case, lib)


def ratio_table(path):
    """Markdown table of pysplay's time divided by each peer's (min of rounds), per case."""
    with open(path) as f:
        data = json.load(f)
    times = {}
    for b in data["benchmarks"]:
        divisor = b["extra_info"].get("per_call_divisor", 1)
        op = "encode" if b["name"].startswith("test_encode") else "decode"
        case, lib = b["params"]["case"], b["params"]["lib"]
        times[(op, case, lib)] = b["stats"]["min"] / divisor
    lines = ["| operation | document | pysplay | " + " | ".join(
        f"{lib} (pysplay ÷ {lib})" for lib in LIBS if lib != "pysplay") + " |",
        "|---|---|---|" + "---|" * (len(LIBS) - 1)]
    for op in ("encode", "decode"):
        for case in DOCS:
            mine = times.get((op, case, "pysplay"))
            if mine is None:
                continue
            cells = []
            for lib in LIBS:
                if lib == "pysplay":
                    continue
                other = times.get((op, case, lib))
                cells.append(f"{other * 1e6:,.1f} µs ({mine / other:.2f})" if other else "n/a")
            lines.append(f"| {op} | {case} | {mine * 1e6:,.1f} µs | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_one(op, case, lib, times):
    """Run one operation `times` times (for instruction counts under callgrind; times=0 measures
    the set-up alone, to subtract)."""
    encode = LIBS[lib][0]
    if op == "encode":
        doc = _form(lib, case)
        for _ in range(times):
            encode(doc)
    else:
        data = encode(_form(lib, case))
        decode = _decoder(lib, case)
        for _ in range(times):
            decode(data)


ISSUE17_CASES = ("request", "nodes200", "fingers32", "bytes64k", "reply")


def msgspec_table(path):
    """Markdown table of issue #17's figure: msgspec's time ÷ pysplay's (min of rounds); 1.0 or
    more means benc is at least as fast."""
    with open(path) as f:
        data = json.load(f)
    times, distances = {}, {}
    for b in data["benchmarks"]:
        divisor = b["extra_info"].get("per_call_divisor", 1)
        op = "encode" if b["name"].startswith("test_encode") else "decode"
        times[(op, b["params"]["case"], b["params"]["lib"])] = b["stats"]["min"] / divisor
        if "copy_distance" in b["extra_info"]:
            distances[(op, b["params"]["lib"])] = b["extra_info"]["copy_distance"]
    lines = ["| document | encode: benc, msgspec, ratio | decode: benc, msgspec, ratio |",
             "|---|---|---|"]
    for case in ISSUE17_CASES:
        cells = []
        for op in ("encode", "decode"):
            mine, other = times.get((op, case, "pysplay")), times.get((op, case, "msgspec"))
            cells.append(f"{mine * 1e6:,.2f} µs, {other * 1e6:,.2f} µs, **{other / mine:.2f}**"
                         if mine and other else "n/a")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    if distances:
        lines.append("\nbytes64k copies, destination - source mod 4096: " + ", ".join(
            f"{lib} {op} {distances[(op, lib)]}" for op in ("encode", "decode")
            for lib in ("pysplay", "msgspec") if (op, lib) in distances))
    return "\n".join(lines)


# The C entry points callgrind counts from (--toggle-collect): the cost of one encode or decode
# call inside the library, without the Python loop around it (the same for both).
_ENTRY_POINTS = {("pysplay", "encode"): "__pyx_pw_6splayc_4benc_*encode",
                 # (the C fast-call front of benc.decode; builds before issue #17's fourth round
                 # have no such function: count those with "__pyx_pw_6splayc_4benc_*decode")
                 ("pysplay", "decode"): "benc_decode_fastcall",
                 ("msgspec", "encode"): "Encoder_encode",
                 ("msgspec", "decode"): "Decoder_decode"}


def callgrind_count(op, case, lib, times=200, pad=None):
    """Instructions per call of `lib`'s `op` on `case`, counted by callgrind inside the codec.
    `pad`: the length of an extra environment variable, which moves the process's heap layout (see
    callgrind_layouts)."""
    import re
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # One str hash seed for every count: dict lookups (building decoded dicts) cost a few percent
    # more or less depending on how the key hashes collide, which otherwise varies run to run.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(root, "python"), root]),
               PYTHONHASHSEED="0")
    if pad is not None:
        env["BENCH_LAYOUT_PAD"] = "x" * pad
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         f"--toggle-collect={_ENTRY_POINTS[(lib, op)]}", sys.executable,
         os.path.abspath(__file__), "--one", op, case, lib, str(times)],
        env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"refs:\s+([\d,]+)", result.stderr).group(1).replace(",", "")) / times


LAYOUT_PADS = (0, 700, 1500, 2900)


def callgrind_layouts(op, case, pads=LAYOUT_PADS):
    """pysplay's and msgspec's instructions per call on `case` in several heap layouts (an
    environment variable of each length in `pads`), as [(pad, pysplay, msgspec)]. For the bytes64k
    document the counts move by a few hundred with the layout, in both libraries: callgrind counts
    each byte of glibc's `rep movsb` copy as an instruction, and how many bytes go through it
    depends on the addresses' alignment (up to ~60); and glibc's malloc serves the ~66-98 KiB
    result from the top of the heap or from a free bin (~100 instructions apart) depending on what
    earlier frees left."""
    return [(pad, callgrind_count(op, case, "pysplay", pad=pad),
             callgrind_count(op, case, "msgspec", pad=pad)) for pad in pads]


def callgrind_table():
    """Instructions per call of pysplay and msgspec on the issue #17 documents, and msgspec's
    count ÷ pysplay's (1.0 or more: benc runs no more instructions)."""
    lines = ["| operation | document | pysplay | msgspec | msgspec ÷ pysplay |", "|---|---|---|---|---|"]
    for op in ("encode", "decode"):
        for case in ISSUE17_CASES:
            mine, other = callgrind_count(op, case, "pysplay"), callgrind_count(op, case, "msgspec")
            lines.append(f"| {op} | {case} | {mine:,.0f} | {other:,.0f} | {other / mine:.2f} |")
    return "\n".join(lines)


def rpc_codec_count(calls=(200, 1200)):
    """benc's instructions per sequential rpcq call (bench/test_rpc.py's concat("one", "two")),
    client and server, counted by callgrind only inside the entry points the RPC core uses
    (encode_framed_c, decode_c): deterministic, where whole-call counts move with the load."""
    import importlib.util
    import signal
    import subprocess
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("bench_rpc", os.path.join(here, "test_rpc.py"))
    rpc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rpc)
    vg = ["valgrind", "--tool=callgrind", "--quiet",
          "--toggle-collect=__pyx_f_6splayc_4benc_decode_c",
          "--toggle-collect=__pyx_f_6splayc_4benc_encode_framed_c"]
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in calls:
            s_out, c_out = os.path.join(tmp, f"s{n}"), os.path.join(tmp, f"c{n}")
            env = dict(rpc._env(), PYTHONHASHSEED="0")
            server = subprocess.Popen(vg + [f"--callgrind-out-file={s_out}", sys.executable,
                                            rpc.__file__, "--server", rpc.server_impl("rpcq"),
                                            "persistent"], stdout=subprocess.PIPE, text=True, env=env)
            try:
                port = int(server.stdout.readline())
                subprocess.run(vg + [f"--callgrind-out-file={c_out}", sys.executable, rpc.__file__,
                                     "--client", "rpcq", "persistent", "seq", str(port)],
                               check=True, capture_output=True, timeout=1800,
                               env=dict(env, RPC_BENCH_CALLS=str(n)))
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(300)
            counts.append((rpc._instructions(c_out), rpc._instructions(s_out)))
    (c1, s1), (c2, s2) = counts
    span = calls[1] - calls[0]
    return (c2 - c1) / span, (s2 - s1) / span


def copy_distances(size=65536, src_offset=13, step=8):
    """Times csrc/large_copy.h's three copies of `size` bytes at every distance (destination -
    source modulo 4 KiB, in steps of `step`) with bench/large_copy_distances.c, compiled here with
    `cc -O2`: returns [(distance, memcpy ns, forward ns, backward ns, path benc takes)]."""
    import subprocess
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "large_copy_distances")
        subprocess.run(["cc", "-O2", "-I", os.path.join(root, "csrc"), "-o", exe,
                        os.path.join(root, "bench", "large_copy_distances.c")], check=True)
        out = subprocess.run([exe, str(size), str(src_offset), str(step)], check=True,
                             capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        d, mem, fwd, back, path = line.split()
        rows.append((int(d), float(mem), float(fwd), float(back), path))
    return rows


def _slow_ranges(rows, column, factor=1.1):
    """The distances where a copy took more than `factor` times its median, as "a-b" ranges."""
    limit = statistics.median_high(r[column] for r in rows) * factor
    ranges, step = [], rows[1][0] - rows[0][0]
    for r in rows:
        if r[column] > limit:
            if ranges and ranges[-1][1] == r[0] - step:
                ranges[-1][1] = r[0]
            else:
                ranges.append([r[0], r[0]])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges) or "none"


def copy_distances_report(rows):
    """Markdown summary of copy_distances: each copy's median and worst time, where it is slow, and
    the time of the copy benc takes at each distance against memcpy's."""
    lines = ["| copy | median ns | worst ns (distance) | slow (> 1.1 × median) at distances |",
             "|---|---|---|---|"]
    for column, name in ((1, "memcpy"), (2, "forward loop"), (3, "backward loop")):
        worst = max(rows, key=lambda r: r[column])
        lines.append(f"| {name} | {statistics.median_high(r[column] for r in rows):,.0f} "
                     f"| {worst[column]:,.0f} ({worst[0]}) "
                     f"| {_slow_ranges(rows, column)} |")
    taken = [(r[0], r[{"memcpy": 1, "forward": 2, "backward": 3}[r[4]]], r[1]) for r in rows]
    worst = max(taken, key=lambda t: t[1])
    lines.append(f"| benc's choice | {statistics.median_high(t for _, t, _ in taken):,.0f} "
                 f"| {worst[1]:,.0f} ({worst[0]}) "
                 f"| {_slow_ranges([(d, t) for d, t, _ in taken], 1)} |")
    wins = sum(t <= m * 1.02 for _, t, m in taken)
    lines.append(f"\nbenc's choice within 2 % of memcpy or faster at {wins} of {len(taken)} distances; "
                 f"paths: " + ", ".join(f"{p} {sum(r[4] == p for r in rows)}"
                                        for p in ("memcpy", "forward", "backward")))
    return "\n".join(lines)


def alternate(case="bytes64k", rounds=400, calls=50):
    """pysplay's and msgspec's encode and decode of `case` in one process, the four operations
    alternating `rounds` times (`calls` calls each): the minimum time per call of each, and for
    the bytes64k document the distances (modulo 4 KiB) from each copy's source to its destination
    in one more call (encode: the value's payload to its place in the result; decode: the input's
    payload to the new bytes object's), which decide whether the copy meets 4 KiB aliasing."""
    import time
    ops = {}
    for lib in ("pysplay", "msgspec"):
        encode, data = LIBS[lib][0], LIBS[lib][0](_form(lib, case))
        ops[("encode", lib)] = (encode, _form(lib, case))
        ops[("decode", lib)] = (_decoder(lib, case), data)
    best = dict.fromkeys(ops, float("inf"))
    for _ in range(rounds):
        for key, (fn, arg) in ops.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn(arg)
            best[key] = min(best[key], (time.perf_counter() - start) / calls)
    lines = []
    for op in ("encode", "decode"):
        mine, other = best[(op, "pysplay")], best[(op, "msgspec")]
        lines.append(f"{op} {case}: benc {mine * 1e6:.3f} µs, msgspec {other * 1e6:.3f} µs, "
                     f"msgspec ÷ benc {other / mine:.2f}")
    if case == "bytes64k":
        for lib in ("pysplay", "msgspec"):
            encoded, decoded = copy_distances_of(lib, case, ops[("decode", lib)][1])
            lines.append(f"{lib}: destination - source mod 4096: encode {encoded}, decode {decoded}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        run_one(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--callgrind":
        print(callgrind_table())
    elif len(sys.argv) > 1 and sys.argv[1] == "--callgrind-one":     # op case lib
        print(f"{callgrind_count(sys.argv[2], sys.argv[3], sys.argv[4]):,.0f}")
    elif len(sys.argv) > 1 and sys.argv[1] == "--callgrind-layouts":     # op case
        for pad, mine, other in callgrind_layouts(sys.argv[2], sys.argv[3]):
            print(f"env pad {pad:5}: pysplay {mine:,.0f}, msgspec {other:,.0f}, "
                  f"msgspec ÷ pysplay {other / mine:.4f}")
    elif len(sys.argv) > 1 and sys.argv[1] == "--rpc-callgrind":
        client, server = rpc_codec_count()
        print(f"benc per rpcq call: client {client:,.0f}, server {server:,.0f}, "
              f"both {client + server:,.0f} instructions")
    elif len(sys.argv) > 1 and sys.argv[1] == "--copy-distances":    # [size src_offset]
        print(copy_distances_report(copy_distances(*map(int, sys.argv[2:4]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--alternate":         # case [rounds]
        print(alternate(sys.argv[2], *map(int, sys.argv[3:4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--msgspec":
        print(msgspec_table(sys.argv[2]))
    else:
        print(ratio_table(sys.argv[1] if len(sys.argv) > 1 else os.path.join("/tmp", "codecs.json")))
