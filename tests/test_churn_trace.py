"""The SPLAY churn trace format: parsing, validation with line numbers, and Schedule queries."""
import pytest

from splay.churn.errors import TraceError
from splay.churn.trace import Schedule, format_time, parse_trace, read_trace

README_EXAMPLE = "50\n0 100 120 200\n0 130 150\n"


def test_parse_the_original_readme_example():
    schedule = parse_trace(README_EXAMPLE)
    assert len(schedule) == 3
    assert schedule.intervals(0) == [(50.0, None)]
    assert schedule.intervals(1) == [(0.0, 100.0), (120.0, 200.0)]
    assert schedule.intervals(2) == [(0.0, 130.0), (150.0, None)]
    assert schedule.end_time == 200.0


def test_events_are_in_time_order_with_downs_first_at_one_instant():
    schedule = parse_trace("0 10\n10 20\n")
    assert schedule.events() == [(0.0, 0, "up"), (10.0, 0, "down"), (10.0, 1, "up"), (20.0, 1, "down")]


def test_alive_at_counts_a_node_up_at_its_up_time_and_down_at_its_down_time():
    schedule = parse_trace(README_EXAMPLE)
    assert schedule.alive_at(0) == [1, 2]
    assert schedule.alive_at(50) == [0, 1, 2]
    assert schedule.alive_at(100) == [0, 2]
    assert schedule.alive_at(130) == [0, 1]
    assert schedule.alive_at(150) == [0, 1, 2]
    assert schedule.alive_at(200) == [0, 2]
    assert schedule.alive_at(10_000) == [0, 2]   # lines ending on an up time stay up
    assert schedule.population_before(100) == 3
    assert schedule.population_at(100) == 2


def test_population_curve_samples_every_step_and_ends_at_the_end():
    schedule = parse_trace(README_EXAMPLE)
    assert schedule.population_curve(50) == [(0, 2), (50, 3), (100, 2), (150, 3), (200.0, 2)]
    assert schedule.max_population() == 3
    with pytest.raises(ValueError):
        schedule.population_curve(0)


def test_comments_and_blank_lines_define_no_node():
    schedule = parse_trace("# a comment\n\n10 20   # node 0\n   \n30\n")
    assert len(schedule) == 2
    assert schedule.times(1) == (30.0,)


def test_decimal_and_exponent_times_and_text_round_trip(tmp_path):
    schedule = parse_trace("0.5 1e3\n12.25\n")
    assert schedule.times(0) == (0.5, 1000.0)
    assert schedule.to_text() == "0.5 1000\n12.25\n"
    path = tmp_path / "trace.txt"
    schedule.write(path)
    assert read_trace(path) == schedule


def test_format_time():
    assert format_time(30.0) == "30"
    assert format_time(0.125) == "0.125"
    assert format_time(1.1) == "1.1"


@pytest.mark.parametrize("text, line, column, words", [
    ("0 10\n5 abc\n", 2, 3, "is not a time in seconds"),
    ("0 10\n5 -3\n", 2, 3, "negative time"),
    ("0 10\n20 20\n", 2, 4, "is not after the previous time 20"),
    ("0 10\n  30 5\n", 2, 6, "'down' time"),
    ("0 10 5\n", 1, 6, "'up' time"),
    ("1 inf\n", 1, 3, "not a finite time"),
    ("1 nan\n", 1, 3, "not a finite time"),
])
def test_bad_traces_name_the_line_column_and_problem(text, line, column, words):
    with pytest.raises(TraceError) as caught:
        parse_trace(text, filename="t.txt")
    error = caught.value
    assert (error.filename, error.line, error.column) == ("t.txt", line, column)
    assert words in error.message
    assert str(error).startswith(f"t.txt:{line}:{column}: ")


def test_read_trace_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.trace"
    path.write_text("0 10\n0 x\n")
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert str(caught.value).startswith(f"{path}:2:3: ")


def test_schedule_from_intervals_and_its_own_validation():
    schedule = Schedule.from_intervals([[(0, 10), (20, None)], [(5, 6)]])
    assert schedule.times(0) == (0.0, 10.0, 20.0)
    assert schedule.is_up(0, 25) and not schedule.is_up(1, 6)
    with pytest.raises(TraceError):
        Schedule([[10, 5]])
    with pytest.raises(TraceError):
        Schedule([[-1]])
