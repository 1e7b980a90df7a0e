"""Churn: when the nodes of an experiment go up and down.

- `splay.churn.trace`: the SPLAY churn trace format and the `Schedule` it describes.
- `splay.churn.lang`: the churn language (``at 30s join 10`` ...) compiled into a schedule.
- `splay.churn.availability`: availability logs of real systems converted into a schedule.
- `splay.churn.cli`: the ``splay churn`` command.

See docs/churn.md.
"""
from .availability import ConvertedAvailability, parse_availability, read_availability
from .errors import AvailabilityError, ChurnError, ScriptError, TraceError
from .lang import CompiledScript, compile_file, compile_script, parse_script
from .trace import Schedule, format_time, parse_trace, read_trace

__all__ = ["Schedule", "parse_trace", "read_trace", "format_time",
           "compile_script", "compile_file", "parse_script", "CompiledScript",
           "parse_availability", "read_availability", "ConvertedAvailability",
           "ChurnError", "TraceError", "ScriptError", "AvailabilityError"]
