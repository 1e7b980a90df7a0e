"""The original Lua SPLAY libraries as a peer, when this machine has them: where they are and how
to start bench/lua_rpc_peer.lua (used by bench/test_rpc.py and tests/test_rpc_lua_interop.py).

They are not part of pysplay and CI never has them (they are GPL, and fetched code is not ours to
ship): $SPLAY_LUA names a directory of them, built as BENCHMARKS.md ("The Lua original") says,
that is a Lua package path and C path at once: ``splay.lua`` and ``splay/*.lua`` (daemon/src/lua/
modules of the original SPLAY), ``splay_core.so`` and ``splay/misc_core.so`` (daemon/src/c/
splay.c and misc.c built against Lua 5.1); bench/lua/crypto.lua stands in for luacrypto.
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "lua_rpc_peer.lua")
#: The family of bench/test_rpc.py each Lua SPLAY module serves (lua_rpc_peer.lua's argument).
FAMILY = {"rpcq": "persistent", "rpc": "percall", "urpc": "udp"}


def lua_modules():
    """The directory named by $SPLAY_LUA, or None when it is not set (no Lua peer then). A
    directory without the libraries, or no lua5.1 on PATH, is an error, not a silent skip."""
    path = os.environ.get("SPLAY_LUA")
    if not path:
        return None
    if not os.path.exists(os.path.join(path, "splay", "rpcq.lua")) or not shutil.which("lua5.1"):
        raise RuntimeError(f"SPLAY_LUA={path}: no splay/rpcq.lua there or no lua5.1 on PATH; "
                           "unset it to run without the Lua peer (BENCHMARKS.md: The Lua original)")
    return path


def lua_env(base=None):
    """``base`` (default: this process's environment) with Lua's module paths set to $SPLAY_LUA."""
    path = lua_modules()
    return dict(os.environ if base is None else base,
                LUA_PATH=f"{path}/?.lua;{os.path.join(HERE, 'lua')}/?.lua;;",
                LUA_CPATH=f"{path}/?.so;;")


def lua_commands(family, callers, calls):
    """(server, client) command lines of the Lua peer for a family of bench/test_rpc.py; "{port}"
    stands for the server's port, which the caller chooses (Lua SPLAY's servers listen on a
    given port)."""
    return (["lua5.1", PEER, "server", family, "{port}"],
            ["lua5.1", PEER, "client", family, "{port}", str(callers), str(calls)])
