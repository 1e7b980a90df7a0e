"""splay.launch.output: the launcher's merged log of the nodes' output pipes."""
import fcntl
import os

from splay.launch.output import MAX_LINE, OutputMux


class FixedClock:
    """Every log line stamped the same: the tests compare whole logs."""

    def now(self):
        return 0.0

    @staticmethod
    def format(t):
        return "T"


def log_of(tmp_path, name, data, chunk_sizes, demux):
    """The log of ``data`` written into a real pipe in chunks of the given sizes (cycling)."""
    mux = OutputMux(str(tmp_path / name), echo=None, notes=None, clock=FixedClock())
    mux.add("host", demux=demux)
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)    # room for the whole text: writes never block
    os.set_blocking(r, False)
    try:
        sent, i = 0, 0
        while sent < len(data):
            size = chunk_sizes[i % len(chunk_sizes)]
            os.write(w, data[sent:sent + size])
            sent += size
            i += 1
            mux.read("host", r)
        os.close(w)
        w = None
        while mux.read("host", r):
            pass
    finally:
        if w is not None:
            os.close(w)
        os.close(r)
        mux.close()
    return (tmp_path / name).read_text()


def test_a_long_line_is_cut_at_the_same_bytes_however_the_pipe_delivers_it(tmp_path):
    # A simulation's log must be the same run after run: a 150 KB line of node 3 (the Chord demo
    # prints its whole ring on one line) used to be cut where a read happened to end, and its
    # second piece was logged as the host's.
    line = b"\x1e3\x1f" + b"".join(f"ring {i:06d} -> ".encode() for i in range(10_000)) + b"\n"
    data = b"\x1e1\x1fbefore\n" + line + b"\x1e2\x1fafter\n"
    logs = [log_of(tmp_path, f"log{k}", data, sizes, demux=True)
            for k, sizes in enumerate([[len(data)], [1000], [65536, 7], [MAX_LINE + 1, 3]])]
    assert logs[1:] == logs[:-1]
    lines = logs[0].splitlines()
    assert lines[0] == "T [node 1] before" and lines[-1] == "T [node 2] after"
    pieces = lines[1:-1]
    assert len(pieces) == -(-(len(line) - 4) // MAX_LINE) == 3
    assert all(p.startswith("T [node 3] ") for p in pieces)
    assert "".join(p[len("T [node 3] "):] for p in pieces) == line[3:-1].decode()


def test_a_long_line_of_a_single_node_is_cut_into_its_own_lines(tmp_path):
    data = b"x" * (2 * MAX_LINE + 10) + b"\nend\n"
    first = log_of(tmp_path, "a", data, [len(data)], demux=False)
    assert first == log_of(tmp_path, "b", data, [4096], demux=False)
    assert [len(line) for line in first.splitlines()] == \
        [len("T [host] ") + n for n in (MAX_LINE, MAX_LINE, 10, 3)]
