"""Availability logs of real systems ('<node-id> <time> up|down') converted into churn traces."""
from datetime import datetime, timezone
from pathlib import Path

import pytest

from splay.churn.availability import parse_availability, read_availability
from splay.churn.errors import AvailabilityError
from splay.churn.trace import parse_trace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "churn"


def test_seconds_log_becomes_one_line_per_node_in_order_of_appearance():
    text = """# node time state
    beta  10   up
    alpha 0    UP
    beta  20   down
    alpha 35.5 down
    beta  40   on
    """
    converted = parse_availability(text)
    assert converted.node_ids == ["beta", "alpha"]
    assert converted.schedule.times(0) == (10.0, 20.0, 40.0)   # ends up: stays up
    assert converted.schedule.times(1) == (0.0, 35.5)
    assert converted.origin is None


def test_a_node_first_seen_going_down_was_up_from_the_start():
    converted = parse_availability("a 50 down\na 60 up\nb 0 down\nc 5 off\n")
    assert converted.schedule.times(0) == (0.0, 50.0, 60.0)
    # b goes down at 0 and never comes up: it has no line at all
    assert converted.node_ids == ["a", "c"]
    assert converted.schedule.times(1) == (0.0, 5.0)


def test_iso_times_count_from_the_earliest_or_from_the_origin():
    text = "h1 2024-03-01T10:00:30Z up\nh2 2024-03-01T10:00:00Z up\nh1 2024-03-01T11:00:30+00:00 down\n"
    converted = parse_availability(text)
    assert converted.schedule.times(0) == (30.0, 3630.0)
    assert converted.schedule.times(1) == (0.0,)
    assert converted.origin == datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
    shifted = parse_availability(text, origin=datetime(2024, 3, 1, 9, 59, tzinfo=timezone.utc))
    assert shifted.schedule.times(1) == (60.0,)


def test_example_file_converts_to_a_valid_trace():
    converted = read_availability(EXAMPLES / "availability.txt")
    assert parse_trace(converted.schedule.to_text()) == converted.schedule
    assert converted.node_ids == ["planetlab1", "planetlab2", "planetlab3"]
    assert converted.schedule.population_at(0) == 2


@pytest.mark.parametrize("text, line, column, words", [
    ("a 0 up\nb 1\n", 2, 1, "expected 3 fields"),
    ("a 0 up\nb 1 maybe\n", 2, 5, "neither 'up' nor 'down'"),
    ("a 0 up\nb yesterday up\n", 2, 3, "neither a number of seconds nor an ISO 8601"),
    ("a -5 up\n", 1, 3, "negative time"),
    ("a 0 up\nb 2024-03-01T10:00:00 up\n", 2, 3, "mixes time kinds"),
    ("a 10 up\na 10 down\n", 2, 3, "is not after its previous event"),
    ("a 10 up\n# note\na 5 down\n", 3, 3, "line 1"),
    ("a 10 up\na 20 up\n", 2, 3, "already up since line 1"),
    ("a 10 down\na 20 down\n", 2, 3, "already down since line 1"),
    ("a 2024-03-01T10:00:00Z up\nb 2024-03-01T10:00:00 up\n", 2, 3, "time zone"),
])
def test_bad_logs_give_line_column_and_reason(text, line, column, words):
    with pytest.raises(AvailabilityError) as caught:
        parse_availability(text, filename="log.txt")
    error = caught.value
    assert words in error.message
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).startswith(f"log.txt:{line}:{column}: ")


def test_iso_time_before_the_given_origin_is_an_error():
    with pytest.raises(AvailabilityError) as caught:
        parse_availability("a 2024-03-01T10:00:00 up\n", origin=datetime(2024, 3, 2))
    assert "before the origin" in caught.value.message and caught.value.line == 1


def test_origin_and_times_must_agree_on_time_zones():
    with pytest.raises(AvailabilityError) as caught:
        parse_availability("a 2024-03-01T10:00:00Z up\n", origin=datetime(2024, 3, 1))
    assert "time zone" in caught.value.message


def test_read_availability_errors_name_the_file(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("a 0 up\na x down\n")
    with pytest.raises(AvailabilityError) as caught:
        read_availability(path)
    assert str(caught.value).startswith(f"{path}:2:3: ")
