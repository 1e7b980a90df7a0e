"""``check_module_logger``: what every module's ``l_o`` must do (the API: a ``splay.log`` object,
default level warning, that users may tune)."""
from splay import log


def check_module_logger(module, name):
    """Assert that ``module.l_o`` is a warning-level logger prefixed ``[name]`` whose level and
    output a user can change, and that it writes nothing below its level."""
    l_o = module.l_o
    assert isinstance(l_o, log.Logger)
    assert l_o.level == log.WARNING and l_o.prefix == f"[{name}]"
    lines = []
    saved = l_o.level
    l_o.out = lines.append
    try:
        l_o.notice("hidden at the default level")
        l_o.warning("shown")
        l_o.level = log.DEBUG
        l_o.debug("tuned")
    finally:
        l_o.out, l_o.level = None, saved     # None: back to following log.global_out
    assert lines == [f"[{name}] W: shown", f"[{name}] D: tuned"]
