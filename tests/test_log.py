"""splay.log: levels, prefixes, per-object and global levels, write/out overrides, module l_o."""
import importlib
import re

import pytest

from splay import log, out


@pytest.fixture
def captured():
    """Route the global output to a list for the test; restore the defaults afterwards."""
    lines = []
    saved_level, saved_out = log.global_level, log.global_out
    log.global_out = lines.append
    yield lines
    log.global_level, log.global_out = saved_level, saved_out


def test_manual_standard_log_example(captured):
    log.debug("debug")          # will not be displayed
    log.global_level = 1
    log.debug("debug again")
    assert captured == ["D: debug again"]


def test_manual_log_object_example(captured):
    l_o = log.new(2, "[my_log]")    # default level set to 'notice'
    l_o.debug("debug")              # will not be displayed
    l_o.level = 1
    l_o.debug("debug again")
    assert captured == ["[my_log] D: debug again"]


def test_manual_customisation_example(captured, tmp_path):
    l_o = log.new(2, "[mylog]")
    l_o.info("test")
    assert captured == ["[mylog] N: test"]

    from splay import misc
    l_o.write = lambda level, *args: log.global_write(
        level, "thread: main", "%.4f" % misc.time(), *args)
    l_o.info("test")
    assert re.fullmatch(r"\[mylog\] N: thread: main \d+\.\d{4} test", captured[1])

    path = tmp_path / "my_log.txt"
    l_o.out = out.file(str(path))
    l_o.info("to the file")
    l_o.error("again")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and lines[0].endswith("to the file") and "E: " in lines[1]
    assert len(captured) == 2              # nothing more on the global output


def test_levels_and_labels(captured):
    l_o = log.new(1, "[p]")
    l_o.debug("a")
    l_o.notice("b")
    l_o.info("c")
    l_o.warning("d")
    l_o.warn("e")
    l_o.error("f")
    l_o.print("g", 1, None)
    assert captured == ["[p] D: a", "[p] N: b", "[p] N: c", "[p] W: d", "[p] W: e", "[p] E: f",
                        "[p] g 1 None"]
    captured.clear()
    l_o.level = 4
    l_o.warning("dropped")
    l_o.error("kept")
    l_o.print("kept too")
    l_o.level = 6
    l_o.print("silenced")
    assert captured == ["[p] E: kept", "[p] kept too"]


def test_object_level_is_its_own(captured):
    l_o = log.new(3)
    log.global_level = 1
    l_o.debug("not shown: the object's level is 3")
    l_o.warning("shown")
    assert captured == ["W: shown"]
    log.global_level = 5
    l_o.warning("still shown: global_level does not apply to objects")
    log.warning("not shown: the default logger follows global_level")
    assert captured[-1] == "W: still shown: global_level does not apply to objects"
    assert len(captured) == 2


def test_default_level_is_warning():
    assert log.new().level == 3 and log.new().prefix is None
    assert log.global_write(5, "x") == "x"
    assert log.global_write(4, "a", 2, b"c") == "E: a 2 b'c'"
    with pytest.raises(TypeError):
        log.new("3")


def test_out_and_write_fall_back_to_globals(captured):
    l_o = log.new(1)
    assert l_o.out is log.global_out and l_o.write is log.global_write
    mine = []
    l_o.out = mine.append
    l_o.notice("x")
    l_o.out = None
    l_o.notice("y")
    assert mine == ["N: x"] and captured == ["N: y"]


def test_write_returning_none_skips_the_line(captured):
    l_o = log.new(1)
    l_o.write = lambda level, *args: None if level < 3 else log.global_write(level, *args)
    l_o.debug("filtered")
    l_o.error("kept")
    assert captured == ["E: kept"]


@pytest.mark.parametrize("name", ["benc", "llenc", "enc", "bits", "misc", "log", "events", "socket",
                                  "rpc", "urpc", "rpcq", "net", "out", "utils", "job",
                                  "restricted_io", "restricted_socket"])
def test_every_module_has_its_l_o(name, captured):
    module = importlib.import_module(f"splay.{name}")
    assert isinstance(module.l_o, log.Logger)
    if name != "log":
        assert module.l_o.level == 3
        module.l_o.level = 2           # as in the manual: rpc.l_o.level = 2
        try:
            module.l_o.notice("tuned")
        finally:
            module.l_o.level = 3
        assert captured == [f"[{name}] N: tuned"]


def test_module_logger():
    l_o = log.module_logger("rpc")
    assert l_o.prefix == "[rpc]" and l_o.level == 3


def test_print_output_flushes(capfd):
    f = out.print()
    f("line one")
    assert capfd.readouterr().out == "line one\n"

