"""The fault timeline language: every kind of line, the merged timeline, seeded random faults,
and an exact file:line:col error for each kind of mistake."""
import itertools

import pytest

from splay.faults import FaultError, actions, load_faults, parse_faults

EXAMPLE = """\
# the issue's examples
pause 3 at 10s for 5s
skew 0-4 +500ms from 20s
kill 2 at 5s
restart 2 at 8s
partition 0-3|4-7 from 5s to 15s
drift 1 1.001 from 0s
slow 2 x4 from 3s to 9s
delay 1 200ms from 0s to 1m
loss 1 5% from 1s
duplicate all 1% at 0s for 500ms
reorder 0,2,5-6 1% from 2
random seed 7 every 10s pick pause|partition|kill for 5s
"""


def test_every_kind_of_line_parses_into_its_fault():
    timeline = parse_faults(EXAMPLE, "example.faults")
    got = [(f.kind, f.nodes, f.start, f.end, f.value, f.groups, f.line) for f in timeline.faults]
    assert got == [
        ("pause", (3,), 10.0, 15.0, None, (), 2),
        ("skew", (0, 1, 2, 3, 4), 20.0, None, 0.5, (), 3),
        ("kill", (2,), 5.0, None, None, (), 4),
        ("restart", (2,), 8.0, None, None, (), 5),
        ("partition", tuple(range(8)), 5.0, 15.0, None, ((0, 1, 2, 3), (4, 5, 6, 7)), 6),
        ("drift", (1,), 0.0, None, 1.001, (), 7),
        ("slow", (2,), 3.0, 9.0, 4.0, (), 8),
        ("delay", (1,), 0.0, 60.0, 0.2, (), 9),
        ("loss", (1,), 1.0, None, 0.05, (), 10),
        ("duplicate", None, 0.0, 0.5, 0.01, (), 11),
        ("reorder", (0, 2, 5, 6), 2.0, None, 0.01, (), 12),
    ]
    (spec,) = timeline.randoms
    assert (spec.seed, spec.every, spec.kinds, spec.duration, spec.line) == \
        (7, 10.0, ("pause", "partition", "kill"), 5.0, 13)
    assert timeline.faults[0].describe() == "pause 3 at 10s for 5s"
    assert timeline.faults[9].targets(3) == (0, 1, 2)
    timeline.check_nodes(8)


def test_the_timeline_is_in_time_order_with_ends_before_begins():
    timeline = parse_faults("pause 1 from 2s to 4s\nkill 0 at 1s for 1s\npause 1 at 4s for 1s\n")
    got = [(a.t, a.what, a.fault.kind, a.fault.line) for a in actions(timeline, 2)]
    assert got == [(1.0, "begin", "kill", 2), (2.0, "end", "kill", 2), (2.0, "begin", "pause", 1),
                   (4.0, "end", "pause", 1), (4.0, "begin", "pause", 3), (5.0, "end", "pause", 3)]
    restart = next(a for a in actions(timeline, 2) if a.what == "end")
    assert restart.describe() == "kill 0 at 1s for 1s: restart"


def _first(timeline, count, k):
    return [(a.t, a.what, a.fault.describe()) for a in itertools.islice(actions(timeline, count), k)]


def test_a_seeded_random_timeline_is_the_same_twice_and_another_seed_differs():
    text = "random seed 7 every 10s pick pause|partition|kill|slow for 5s\n"
    first = _first(parse_faults(text), 8, 200)
    assert first == _first(parse_faults(text), 8, 200)
    assert first != _first(parse_faults(text.replace("seed 7", "seed 8")), 8, 200)
    begins = [entry for entry in first if entry[1] == "begin"]
    assert [t for t, _, _ in begins[:3]] == [10.0, 20.0, 30.0]
    assert {d.split()[0] for _, _, d in begins} == {"pause", "partition", "kill", "slow"}
    # an endless line keeps drawing; a bounded one stops at its end
    bounded = parse_faults("random seed 1 every 1s pick pause for 1s from 5s to 10s on 2-3\n")
    drawn = [a for a in actions(bounded, 4) if a.what == "begin"]
    assert [a.t for a in drawn] == [6.0, 7.0, 8.0, 9.0]
    assert all(a.fault.nodes[0] in (2, 3) for a in drawn)


def test_partitions_drawn_at_random_cut_the_pool_in_two():
    timeline = parse_faults("random seed 3 every 1s pick partition for 1s to 50s\n")
    for action in actions(timeline, 5):
        a, b = action.fault.groups
        assert 1 <= len(a) <= 2 and sorted(a + b) == [0, 1, 2, 3, 4]


def test_a_file_is_read_with_its_name_in_errors(tmp_path):
    path = tmp_path / "bad.faults"
    path.write_text("pause 1 at 1s for 1s\nfreeze 2 at 1s\n")
    with pytest.raises(FaultError) as error:
        load_faults(path)
    assert str(error.value).startswith(f"{path}:2:1: unknown fault 'freeze'")


@pytest.mark.parametrize("text, where, message", [
    ("freeze 1 at 1s", "1:1", "unknown fault 'freeze': a line starts with one of pause"),
    ("\n\npause", "3:6", "expected the nodes (e.g. '3', '0-4' or 'all'), found the end of the line"),
    ("pause x at 1s", "1:7", "expected the nodes as positions from 0"),
    ("pause 4-2 at 1s", "1:7", "the range '4-2' goes down: write it low-high, as '2-4'"),
    ("pause 1", "1:8", "expected when: 'at T'"),
    ("pause 1 when 1s", "1:9", "expected when the fault happens"),
    ("pause 1 at soon", "1:12", "expected the time after 'at' (a number with a unit"),
    ("pause 1 at 5x", "1:12", "found '5x'"),
    ("pause 1 at 1s to 5s", "1:15", "'at T' is an instant: write 'from T1 to T2' or 'at T for D'"),
    ("pause 1 from 5s to 2s", "1:20", "the fault ends (2s) before or when it starts (5s)"),
    ("pause 1 at 5s for 0s", "1:19", "before or when it starts"),
    ("pause 1 at 5s for 1s now", "1:22", "unexpected 'now' after the fault (one fault per line)"),
    ("kill 1 from 5s", "1:8", "'kill' happens at an instant"),
    ("restart 1 at 5s for 2s", "1:17", "'restart' happens at an instant"),
    ("restart 1 from 5s", "1:11", "'restart' happens at an instant"),
    ("skew 1 500ms from 0s", "1:8", "with its sign ('+500ms' or '-2s')"),
    ("skew 1 +fast from 0s", "1:8", "expected the skew (a number with a unit"),
    ("drift 1 fast from 0s", "1:9", "a clock rate"),
    ("drift 1 0 from 0s", "1:9", "a positive number"),
    ("slow 1 4 from 0s", "1:8", "a slow-down factor"),
    ("slow 1 x0.5 from 0s", "1:8", "a slow-down factor is at least x1"),
    ("loss 1 5 from 0s", "1:8", "a percentage of datagrams lost"),
    ("loss 1 150% from 0s", "1:8", "at most 100%, not 150%"),
    ("duplicate 1 0% from 0s", "1:13", "above 0%"),
    ("delay 1 fast from 0s", "1:9", "an added one-way delay"),
    ("partition 0-3||4 from 0s", "1:11", "expected groups separated by '|'"),
    ("partition 0-3|3-4 from 0s", "1:11", "node 3 is in two groups of the partition"),
    ("partition all|1 from 0s", "1:11", "'all' cannot be cut"),
    ("random every 10s pick pause for 5s", "1:1", "a 'random' line needs 'seed'"),
    ("random seed x every 1s pick pause for 1s", "1:13", "the seed is a whole number, not 'x'"),
    ("random seed 1 every 0s pick pause for 1s", "1:21", "after 'every' must be longer than 0s"),
    ("random seed 1 every 1s pick pause|skew for 1s", "1:29", "not 'skew'"),
    ("random seed 1 every 1s pick pause for 1s often", "1:42", "expected seed, every, pick"),
    ("random seed 1 every 1s pick pause for 1s from 5s to 5s", "1:53", "'to 5s' is not after"),
])
def test_each_mistake_gets_an_exact_error(text, where, message):
    with pytest.raises(FaultError) as error:
        parse_faults(text, "f.faults")
    text_of = str(error.value)
    assert text_of.startswith(f"f.faults:{where}: "), text_of
    assert message in text_of


@pytest.mark.parametrize("text, count, where, message", [
    ("pause 0\npause 5 at 1s", 4, None, None),
    ("pause 1 at 1s\n  pause 2,9 at 1s", 4, "2:3",
     "names node 9, but the run has 4 node(s) (positions 0 to 3)"),
    ("partition 0-3 from 1s", 4, "1:1", "leaves no node on the other side"),
    ("random seed 1 every 1s pick pause for 1s on 1-7", 4, "1:1", "names node 4"),
    ("random seed 1 every 1s pick partition for 1s", 1, "1:1", "needs at least 2 nodes"),
])
def test_positions_are_checked_against_the_runs_nodes(text, count, where, message):
    if where is None:           # the first line is itself a mistake: parsing stops there
        with pytest.raises(FaultError, match=r"^f:1:8: expected when"):
            parse_faults(text, "f")
        return
    timeline = parse_faults(text, "f")
    with pytest.raises(FaultError) as error:
        timeline.check_nodes(count)
    assert str(error.value).startswith(f"f:{where}: ") and message in str(error.value)
