"""The churn language: parsing (time expressions, vocabulary, errors with line and column) and
compilation into a trace whose population curve is the one the script describes."""
from pathlib import Path

import pytest

from splay.churn.errors import ScriptError
from splay.churn.lang import compile_file, compile_script, format_duration, parse_script
from splay.churn.trace import parse_trace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "churn"


def downs_between(schedule, a, b):
    """How many nodes go down in the open interval (a, b)."""
    return sum(1 for t, _, change in schedule.events() if change == "down" and a < t < b)


def only_time(text):
    (instruction,) = parse_script(text)
    return instruction.start


# ---------------------------------------------------------------- the paper's example script

PAPER_CURVE = {  # time (s) -> population, from the script's own words
    0: 0, 29: 0, 30: 10, 299: 10, 450: 15, 600: 20, 700: 20, 899: 20,
    900: 10, 1050: 15, 1199: 20, 1200: 0, 5000: 0,
}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_paper_script_gives_the_expected_population_curve(seed):
    compiled = compile_file(EXAMPLES / "paper.churn", seed=seed)
    schedule = compiled.schedule
    for t, population in PAPER_CURVE.items():
        assert schedule.population_at(t) == population, f"at {t}s"
    # the constant period really stays constant while nodes are replaced
    for t in range(600, 900, 5):
        assert schedule.population_at(t) == 20
    assert [m.population for m in compiled.milestones] == [10, 20, 20, 10, 20, 0]
    assert compiled.warnings == []
    assert compiled.stop_time == 1200


def test_paper_script_churn_replaces_the_requested_share_of_nodes():
    schedule = compile_file(EXAMPLES / "paper.churn").schedule
    # churn 50% of 20 nodes over 10m-15m: 10 replacements (the 50% leave happens at 15m itself)
    assert downs_between(schedule, 600, 900) == 10
    # churn 150% over 15m-20m, whose mean population is 15: 22.5, rounded to 22 or 23
    assert downs_between(schedule, 900, 1200) in (22, 23)
    # every node is down when the script stops
    assert all(len(schedule.times(n)) % 2 == 0 and schedule.times(n)[-1] <= 1200
               for n in range(len(schedule)))


def test_same_seed_same_trace_other_seed_other_trace():
    text = (EXAMPLES / "paper.churn").read_text()
    first = compile_script(text, seed=42).schedule
    assert compile_script(text, seed=42).schedule == first
    assert compile_script(text, seed=43).schedule != first


def test_compiled_trace_is_a_valid_trace_text():
    schedule = compile_file(EXAMPLES / "vocabulary.churn", seed=3).schedule
    assert parse_trace(schedule.to_text()) == schedule


def test_vocabulary_example_population_after_each_instruction():
    compiled = compile_file(EXAMPLES / "vocabulary.churn")
    assert [(m.instruction.line, m.population) for m in compiled.milestones] == [
        (4, 0), (5, 0), (6, 200), (7, 170), (8, 340), (9, 340), (10, 340), (11, 170), (12, 0)]
    assert compiled.stop_time == 105 * 60


# ---------------------------------------------------------------- time expressions and syntax

@pytest.mark.parametrize("text, seconds", [
    ("at 30s stop", 30),
    ("at 30 stop", 30),                              # a bare number is seconds
    ("at 3 minutes and 2 seconds stop", 182),
    ("at 3h,34m and 10s stop", 3 * 3600 + 34 * 60 + 10),
    ("at 4*d-(2-1) hours stop", 4 * 86400 - 3600),
    ("at (10*60-4) Seconds stop", 596),
    ("at 1h30m stop", 5400),                         # juxtaposed times add up
    ("at 1h 30m 15s stop", 5415),
    ("at 2*30m stop", 3600),
    ("at 1.5h stop", 5400),
    ("at 1 day + 1 hour stop", 90000),
])
def test_time_expressions(text, seconds):
    assert only_time(text) == seconds


def test_period_and_quantities():
    (instruction,) = parse_script("from 10 m+1s to 1 hour decrease (20+(6-1))% churn 5% per 10s")
    assert (instruction.start, instruction.end) == (601, 3600)
    assert (instruction.action, instruction.quantity.value, instruction.quantity.relative) == ("leave", 25, True)
    assert (instruction.churn.value, instruction.churn.relative, instruction.churn_per) == (5, True, 10)
    (ratio,) = parse_script("at 0s set repratio (100*(0.5*0.5))%")
    assert (ratio.action, ratio.quantity.value) == ("set_ratio", 25)


@pytest.mark.parametrize("text, action", [
    ("at 1s join 1", "join"), ("at 1s add 1", "join"), ("at 1s increase 1", "join"), ("at 1s inc 1", "join"),
    ("at 1s leave 1", "leave"), ("at 1s remove 1", "leave"), ("at 1s decrease 1", "leave"),
    ("at 1s dec 1", "leave"), ("from 1s to 2s const", "const"), ("from 1s to 2s keep", "const"),
    ("at 1s stop", "stop"), ("at 1s end", "stop"), ("at 1s set maximum population to 3", "set_max"),
    ("at 1s set max pop 3", "set_max"), ("at 1s set replacement ratio to 3%", "set_ratio"),
    ("at 1s set rep.ratio 3%", "set_ratio"), ("AT 1S JOIN 1", "join"),
])
def test_action_synonyms(text, action):
    assert parse_script(text)[0].action == action


def test_comments_of_every_kind_and_blank_lines():
    text = "# hash\n\n// slashes\nat 1s join 2 // trailing\n/* a block\n   over lines */ at 2s join 1\n" \
           "at 3s /* inline */ join 1 # end\n"
    instructions = parse_script(text)
    assert [(i.line, i.start) for i in instructions] == [(4, 1), (6, 2), (7, 3)]
    assert instructions[2].text == "at 3s /* inline */ join 1"


@pytest.mark.parametrize("text, line, column, words", [
    ("at 30s join 10\nat 1m jion 3\n", 2, 7, "expected an action"),
    ("from 10m to 5m join 3", 1, 13, "ends (5m) before or when it starts (10m)"),
    ("at 5m join 10 churn 5%", 1, 15, "churn needs a period"),
    ("from 1m to 2m stop", 1, 15, "happens at an instant"),
    ("from 1m to 2m set max pop 3", 1, 15, "takes effect at an instant"),
    ("at 1m set replacement ratio to 150%", 1, 32, "at most 100%"),
    ("at 1m set replacement ratio to 50", 1, 32, "is a percentage"),
    ("at 1m set max pop 10%", 1, 19, "whole number of nodes"),
    ("at 1m join 2.5", 1, 12, "whole number of nodes"),
    ("at 5 m s join 3", 1, 8, "already has a unit"),
    ("at 1m - 2m join 1", 1, 4, "negative"),
    ("at 1m join 1 extra", 1, 14, "one instruction per line"),
    ("at 1m join (2+3", 1, 16, "expected ')'"),
    ("at 1m join @", 1, 12, "unexpected character"),
    ("at 1m join", 1, 11, "how many nodes"),
    ("join 10", 1, 1, "starts with 'at T' or 'from T1 to T2'"),
    ("from 1m join 1", 1, 9, "expected 'to'"),
    ("at 1m set speed 3", 1, 11, "'maximum population' or 'replacement ratio'"),
    ("at 1m join 1\n/* never closed\n", 2, 1, "never closed"),
    ("at 2m * 3m join 1", 1, 7, "cannot multiply two durations"),
    ("from 0s to 1m const churn 5% per 0s", 1, 34, "longer than 0s"),
])
def test_bad_scripts_give_line_column_and_reason(text, line, column, words):
    with pytest.raises(ScriptError) as caught:
        compile_script(text, filename="s.churn")
    error = caught.value
    assert words in error.message
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).startswith(f"s.churn:{line}:{column}: ")


def test_removing_more_nodes_than_are_up_is_an_error():
    with pytest.raises(ScriptError) as caught:
        compile_script("at 0s join 2\nat 1m leave 3\n", filename="s")
    assert (caught.value.line, caught.value.column) == (2, 13)
    assert "removes 3 nodes but only 2 are up" in caught.value.message
    with pytest.raises(ScriptError) as caught:
        compile_script("at 0s join 2\nfrom 1m to 2m leave 3\n", filename="s")
    assert caught.value.line == 2 and "no node is up" in caught.value.message


# ---------------------------------------------------------------- semantics

def test_period_joins_are_spread_evenly_inside_the_period():
    schedule = compile_script("from 0s to 100s join 4").schedule
    assert sorted(schedule.times(n)[0] for n in range(4)) == [12.5, 37.5, 62.5, 87.5]
    assert all(len(schedule.times(n)) == 1 for n in range(4))   # no stop: they stay up


def test_relative_sizes_use_the_population_at_that_time_rounded_down():
    schedule = compile_script("at 0s join 5\nat 10s leave 50%\nat 20s join 100%\n").schedule
    assert schedule.population_at(10) == 3      # 50% of 5 is 2.5: 2 leave
    assert schedule.population_at(20) == 6


def test_instructions_at_one_instant_join_before_they_leave():
    schedule = compile_script("at 0s leave 2\nat 0s join 5\n").schedule
    assert schedule.population_at(0) == 3
    assert len(schedule) == 3                    # nobody joins and leaves in the same instant


def test_churn_per_period_replaces_that_share_every_period():
    compiled = compile_script("at 0s join 20\nfrom 100s to 200s const churn 10% per 10s\n")
    schedule = compiled.schedule
    assert downs_between(schedule, 100, 200) == 20     # 10% of 20, ten times
    assert all(schedule.population_at(t) == 20 for t in range(0, 300, 3))


def test_absolute_churn_counts_nodes():
    schedule = compile_script("at 0s join 20\nfrom 100s to 200s keep churn 6\n").schedule
    assert downs_between(schedule, 100, 200) == 6


@pytest.mark.parametrize("ratio, nodes", [("100%", 30), ("0%", 21)])
def test_replacement_ratio_decides_between_new_and_returning_nodes(ratio, nodes):
    text = f"at 0s set replacement ratio to {ratio}\nat 0s join 20\nfrom 100s to 200s const churn 50%\n"
    schedule = compile_script(text, seed=5).schedule
    # 100%: each of the 10 replacements is a new node; 0%: only the first (nobody is down
    # yet), then the nodes that left come back.
    assert len(schedule) == nodes
    assert schedule.population_at(150) == 20


def test_maximum_population_caps_joins_and_says_so():
    compiled = compile_script("at 0s set max pop 5\nat 1s join 8\nat 2s set max pop 6\nat 3s join 1\n")
    assert compiled.schedule.population_at(1) == 5
    assert compiled.schedule.population_at(3) == 6
    assert any("3 joins dropped" in w and ":2:" in w for w in compiled.warnings)


def test_stop_takes_every_node_down_and_ends_the_script():
    compiled = compile_script("at 0s join 3\nat 1m stop\nat 2m join 4\nfrom 30s to 90s join 6\n")
    schedule = compiled.schedule
    assert schedule.population_at(59) == 6       # 3 + the 3 of the 6 that fall before the stop
    assert schedule.population_at(60) == 0 and schedule.end_time == 60
    assert any("starts after the stop" in w and ":3:" in w for w in compiled.warnings)
    assert any("3 of its joins/leaves fall at or after the stop" in w for w in compiled.warnings)


def test_without_stop_the_nodes_stay_up():
    schedule = compile_script("at 0s join 3\nfrom 1m to 2m const churn 100%\n").schedule
    assert schedule.population_at(10 ** 6) == 3


def test_empty_script_gives_an_empty_trace():
    compiled = compile_script("# nothing\n")
    assert len(compiled.schedule) == 0 and compiled.milestones == []


def test_format_duration():
    assert format_duration(0) == "0s"
    assert format_duration(90) == "1m30s"
    assert format_duration(3600 * 25 + 0.5) == "1d1h0.5s"
