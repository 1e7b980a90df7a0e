"""splay.restricted_io: name mapping, the Python file API inside the directory, exact limits."""
import os
import random

import pytest

import splay
from splay import restricted_io as rio
from support_log import check_module_logger


def disk_usage(directory):
    return sum(entry.stat().st_size for entry in os.scandir(directory))


@pytest.fixture
def fs(tmp_path):
    directory = tmp_path / "fs"
    rio.init(directory=str(directory))
    return directory


def test_names_map_into_the_directory_and_cannot_escape(fs):
    same = {rio.real_path(name) for name in ("notes", "/notes", "x/../notes", "../../notes", "./notes")}
    assert len(same) == 1
    for name in ("/etc/passwd", "../../../etc/passwd", "..", "/", "a/b/c"):
        path = rio.real_path(name)
        assert os.path.dirname(path) == str(fs.resolve())
        assert len(os.path.basename(path)) == 32            # an MD5 hex digest, flat
    with rio.open("/etc/passwd", "w") as f:
        f.write("mine")
    with open("/etc/passwd") as real:
        assert "mine" != real.read()
    assert rio.open("../../etc/passwd").read() == "mine"


def test_bad_names_and_modes_are_rejected(fs):
    with pytest.raises(ValueError, match="invalid file name"):
        rio.open("a\0b")
    with pytest.raises(TypeError, match="must be str or bytes"):
        rio.open(42)
    for mode in ("", "rw", "q", "rb+t", "wt b"):
        with pytest.raises(ValueError, match="invalid mode"):
            rio.open("a", mode)
    with pytest.raises(ValueError, match="only for binary"):
        rio.open("a", "w", buffering=0)
    assert rio.stats() == (0, 0, 0)


def test_not_initialised_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(rio, "_fs", None)
    with pytest.raises(splay.Restricted, match=r"call restricted_io.init\(directory=...\) first"):
        rio.open("a", "w")


def test_init_rejects_bad_limits(tmp_path):
    with pytest.raises(ValueError, match="directory is mandatory"):
        rio.init(directory="")
    with pytest.raises(ValueError, match="max_size must be a non-negative int"):
        rio.init(directory=str(tmp_path), max_size=-1)
    with pytest.raises(ValueError, match="max_files must be a non-negative int"):
        rio.init(directory=str(tmp_path), max_files=2.5)


def test_usual_file_api_text_and_binary(fs):
    with rio.open("t.txt", "w") as f:
        f.write("line 1\nline 2\n")
    assert rio.open("t.txt").read() == "line 1\nline 2\n"
    assert list(rio.lines("t.txt")) == ["line 1\n", "line 2\n"]
    with rio.open("t.txt", "a") as f:
        f.write("line 3\n")
    with rio.open("t.txt", "r+") as f:
        f.seek(5)
        f.write("X")
    assert rio.open("t.txt").read() == "line X\nline 2\nline 3\n"
    with rio.open("b.bin", "w+b") as f:
        f.write(b"\x00\x01\x02")
        f.seek(0)
        assert f.read() == b"\x00\x01\x02"
    with rio.open("b.bin", "rb", buffering=0) as raw:
        assert raw.read(2) == b"\x00\x01"
    with pytest.raises(FileExistsError):
        rio.open("b.bin", "x")
    with pytest.raises(FileNotFoundError):
        rio.open("missing.txt")
    f = rio.open("t.txt")
    assert rio.type(f) == "file" and f.name == "t.txt"
    rio.close(f)
    assert rio.type(f) == "closed file" and rio.type("t.txt") is None
    assert rio.exists("t.txt") and not rio.exists("missing.txt")
    assert rio.stats() == (0, disk_usage(fs), 2)


def test_size_accounting_is_exact_through_writes_truncation_reopen_and_remove(fs):
    with rio.open("a", "wb") as f:
        f.write(b"x" * 100)
    assert rio.stats()[1] == 100
    with rio.open("a", "ab") as f:
        f.write(b"y" * 50)
    assert rio.stats()[1] == 150
    with rio.open("a", "r+b") as f:
        f.truncate(20)
        assert rio.stats()[1] == 20
        f.seek(1000)
        f.write(b"z")                                   # a hole counts: the file is 1001 bytes long
    assert rio.stats()[1] == 1001 == disk_usage(fs)
    with rio.open("a", "wb") as f:                      # reopening with "w" truncates
        assert rio.stats()[1] == 0
        f.write(b"q" * 10)
    with rio.open("b", "wb") as f:
        f.write(b"r" * 5)
    assert rio.stats() == (0, 15, 2)
    rio.remove("a")
    assert rio.stats() == (0, 5, 1) and rio.stats()[1] == disk_usage(fs)
    with pytest.raises(FileNotFoundError):
        rio.remove("a")


def test_two_handles_on_one_file_are_counted_once(fs):
    first = rio.open("shared", "w+b")
    second = rio.open("shared", "r+b")
    first.write(b"a" * 30)
    first.flush()
    second.write(b"b" * 10)                            # overwrites, does not grow
    second.flush()
    assert rio.stats() == (2, 30, 1)
    first.close()
    second.close()
    assert rio.stats() == (0, 30, 1)


def test_max_size_refuses_the_write_that_would_pass_it_and_writes_nothing(tmp_path):
    rio.init(directory=str(tmp_path / "fs"), max_size=100)
    with rio.open("a", "wb", buffering=0) as f:
        assert f.write(b"x" * 100) == 100               # exactly at the limit is fine
        with pytest.raises(splay.Restricted, match=r"over the limit max_size=100 \(free space with remove\(\)\)"):
            f.write(b"y")
        f.seek(10)
        assert f.write(b"z" * 90) == 90                 # overwriting inside the file needs no space
        with pytest.raises(splay.Restricted, match="truncating 'a' to 101 bytes"):
            f.truncate(101)
    assert rio.stats() == (0, 100, 1) and disk_usage(tmp_path / "fs") == 100
    rio.remove("a")
    with rio.open("b", "wb") as f:
        f.write(b"w" * 100)                             # the space came back
    assert rio.stats() == (0, 100, 1)


def test_buffered_write_over_the_limit_fails_at_close_and_frees_the_descriptor(tmp_path):
    rio.init(directory=str(tmp_path / "fs"), max_size=10)
    f = rio.open("a", "w")
    f.write("x" * 20)                                   # still in Python's buffer
    with pytest.raises(splay.Restricted, match="max_size=10"):
        f.close()
    assert f.closed
    assert rio.stats() == (0, 0, 1) and disk_usage(tmp_path / "fs") == 0


def test_max_files_counts_names_not_opens(tmp_path):
    rio.init(directory=str(tmp_path / "fs"), max_files=2)
    for name in ("a", "b"):
        rio.open(name, "w").close()
    with pytest.raises(splay.Restricted, match=r"creating 'c' refused: 2 files exist, the limit max_files=2"):
        rio.open("c", "w")
    rio.open("a", "w").close()                          # rewriting an existing file is fine
    rio.open("a", "a").close()
    assert not rio.exists("c") and rio.stats() == (0, 0, 2)
    rio.remove("b")
    rio.open("c", "w").close()
    assert rio.stats() == (0, 0, 2)


def test_max_file_descriptors(tmp_path):
    rio.init(directory=str(tmp_path / "fs"), max_file_descriptors=2)
    first, second = rio.open("a", "w"), rio.open("b", "w")
    with pytest.raises(splay.Restricted, match="2 files already open, the limit max_file_descriptors=2"):
        rio.open("c", "w")
    first.close()
    first.close()                                       # closing twice frees one descriptor only
    with pytest.raises(FileNotFoundError):
        rio.open("missing")                             # a failed open holds no descriptor
    third = rio.open("c", "w")
    assert rio.stats()[0] == 2
    second.close()
    third.close()
    assert rio.stats()[0] == 0


def test_removed_file_still_open_keeps_counting_until_closed(tmp_path):
    rio.init(directory=str(tmp_path / "fs"), max_size=100)
    f = rio.open("a", "wb", buffering=0)
    f.write(b"x" * 60)
    rio.remove("a")
    assert rio.stats() == (1, 60, 0)                    # the bytes are still on the disk
    with pytest.raises(splay.Restricted):
        f.write(b"y" * 41)
    with rio.open("b", "wb", buffering=0) as other:
        with pytest.raises(splay.Restricted):
            other.write(b"z" * 41)
    f.close()
    assert rio.stats() == (0, 0, 1)


def test_rename_replaces_and_keeps_totals(fs):
    with rio.open("a", "w") as f:
        f.write("aaaa")
    with rio.open("b", "w") as f:
        f.write("bb")
    rio.rename("a", "b")
    assert rio.stats() == (0, 4, 1) and rio.open("b").read() == "aaaa" and not rio.exists("a")
    rio.rename("b", "/b")                               # same virtual file
    with pytest.raises(FileNotFoundError):
        rio.rename("a", "c")
    assert rio.stats()[1] == disk_usage(fs)


def test_tmpfile_counts_while_open_and_vanishes(fs):
    f = rio.tmpfile()
    f.write(b"t" * 10)
    f.flush()
    assert rio.stats() == (1, 10, 0)
    f.seek(0)
    assert f.read() == b"t" * 10
    f.close()
    assert rio.stats() == (0, 0, 0) and disk_usage(fs) == 0


def test_init_counts_existing_files_or_cleans_them(tmp_path):
    directory = tmp_path / "fs"
    rio.init(directory=str(directory))
    with rio.open("kept", "w") as f:
        f.write("12345")
    rio.init(directory=str(directory), max_size=5)
    assert rio.stats() == (0, 5, 1)
    with pytest.raises(splay.Restricted):
        with rio.open("more", "w") as f:
            f.write("6")
    (directory / "subdir").mkdir()
    rio.init(directory=str(directory), clean=True)
    assert rio.stats() == (0, 0, 0) and os.listdir(directory) == []


def test_standard_streams_and_popen(tmp_path, capsys):
    rio.init(directory=str(tmp_path / "fs"))
    assert rio.write("a", 1) is True
    assert capsys.readouterr().out == "a1"
    with pytest.raises(splay.Restricted, match=r"popen refused \(init\(keep_popen=True\)"):
        rio.popen("echo hi")
    rio.init(directory=str(tmp_path / "fs"), keep_popen=True)
    with rio.popen("echo hi") as pipe:
        assert pipe.read() == "hi\n"
    rio.init(directory=str(tmp_path / "fs"), no_std=True)
    assert rio.stdin is None and rio.stdout is None and rio.stderr is None
    with pytest.raises(splay.Restricted, match="standard streams are disabled"):
        rio.write("x")
    with pytest.raises(splay.Restricted, match="standard streams are disabled"):
        rio.read()


def test_limits_and_infos(tmp_path):
    rio.init(directory=str(tmp_path / "fs"), max_file_descriptors=8, max_size=1000)
    with rio.open("a", "w") as f:
        f.write("abc")
    assert rio.limits() == (8, 1000, None)
    assert rio.infos() == (f"restricted_io {(tmp_path / 'fs').resolve()}: descriptors 0/8, bytes 3/1000, "
                           f"files 1/unlimited")


def test_random_operations_keep_the_total_equal_to_the_disk(tmp_path):
    directory = tmp_path / "fs"
    rio.init(directory=str(directory), max_size=5000, max_files=6)
    rng = random.Random(1234)
    names = [f"f{i}" for i in range(8)]
    refused = 0
    for _ in range(400):
        name, op = rng.choice(names), rng.choice(["write", "append", "truncate", "remove", "rename", "rewrite"])
        try:
            if op == "remove":
                rio.remove(name)
            elif op == "rename":
                rio.rename(name, rng.choice(names))
            else:
                mode = {"write": "r+b" if rio.exists(name) else "wb", "append": "ab", "truncate": "r+b",
                        "rewrite": "wb"}[op]
                with rio.open(name, mode) as f:
                    if op == "truncate":
                        f.truncate(rng.randrange(0, 1500))
                    else:
                        if op == "write":
                            f.seek(rng.randrange(0, 1200))
                        f.write(b"d" * rng.randrange(0, 900))
        except splay.Restricted:
            refused += 1
        except FileNotFoundError:
            pass
        descriptors, total, files = rio.stats()
        assert descriptors == 0
        assert total == disk_usage(directory) <= 5000
        assert files == len(os.listdir(directory)) <= 6
    assert refused > 0                                  # the limits were really exercised


def test_module_logger_l_o():
    check_module_logger(rio, "restricted_io")
