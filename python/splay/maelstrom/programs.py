"""Maelstrom programs started by the daemon beside confined nodes (``splayd --maelstrom-programs``).

A node confined by :mod:`splay.sandbox` may create no process, so the adapter of a ``splay
submit --maelstrom --bin`` job cannot start its program. A daemon started with
``--maelstrom-programs`` does it for the node, outside the sandbox:

1. before the node starts, it listens on a loopback port and writes ``{"port": P}`` to
   :data:`BRIDGE_FILE` in the node's directory;
2. the node's adapter finds the file and connects to the port with its (restricted) socket;
3. the daemon then starts the program -- the job's shipped files resolved in its unpacked
   application directory, the node's directory as working directory, the environment a job
   gets -- and carries the connection's bytes to the program's stdin and its stdout back; its
   stderr lines go to the node's log as ``[n<i>] ...``;
4. when the node ends, the program is killed (its whole process group).

The program runs with the daemon's user and none of the sandbox's walls or limits: enable this
only for programs you trust. Without the flag, such jobs fail on confined daemons, saying why.
"""
import asyncio
import json
import logging
import os
import shlex
import signal

from splay.sandbox.environ import job_environment

from .bundle import BRIDGE_FILE

log = logging.getLogger("splayd")


def program_argv(command, app_dir):
    """The program's command line, the words naming shipped files made paths into ``app_dir``
    (the first one executable: a zip archive keeps no mode bits)."""
    argv = []
    for word in shlex.split(command):
        path = os.path.join(app_dir, word)
        argv.append(path if not os.path.isabs(word) and os.path.isfile(path) else word)
    if argv and os.path.isfile(argv[0]) and not os.access(argv[0], os.X_OK):
        os.chmod(argv[0], os.stat(argv[0]).st_mode | 0o111)
    return argv


class ProgramBridges:
    """The programs of one daemon's Maelstrom nodes. ``log_line(instance_id, stamp, stream,
    text)`` and ``clock()`` are the instance manager's."""

    def __init__(self, log_line, clock):
        self.log_line, self.clock = log_line, clock
        self.servers = {}                    # instance id -> the listening server
        self.processes = {}                  # instance id -> the program's process

    async def prepare(self, job, instance_id, position, directory, app_path):
        """Before node ``instance_id`` starts: if its job runs a Maelstrom program, listen for
        the node and write :data:`BRIDGE_FILE` into ``directory``."""
        spec = (job.get("settings") or {}).get("maelstrom") or {}
        command = spec.get("program")
        if not isinstance(command, str) or not command.strip():
            return
        self.close(instance_id)                        # a churned node's earlier life
        app_dir = os.path.dirname(app_path)

        async def serve(reader, writer):
            if instance_id in self.processes:          # one program per node
                writer.close()
                return
            await self._run(instance_id, position, command, app_dir, directory, reader, writer)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.servers[instance_id] = server
        port = server.sockets[0].getsockname()[1]
        with open(os.path.join(directory, BRIDGE_FILE + ".tmp"), "w") as f:
            json.dump({"port": port}, f)
        os.replace(os.path.join(directory, BRIDGE_FILE + ".tmp"),
                   os.path.join(directory, BRIDGE_FILE))

    async def _run(self, instance_id, position, command, app_dir, directory, reader, writer):
        try:
            process = await asyncio.create_subprocess_exec(
                *program_argv(command, app_dir), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=directory,
                env=job_environment(PYTHONUNBUFFERED="1"), start_new_session=True)
        except OSError as e:
            self.log_line(instance_id, self.clock(), "stderr",
                          f"maelstrom: the daemon cannot start the program {command!r}: {e}")
            writer.close()
            return
        self.processes[instance_id] = process
        log.info("maelstrom program of instance %d started (pid %d)", instance_id, process.pid)
        await asyncio.gather(self._to_program(reader, process), self._from_program(process, writer),
                             self._stderr(instance_id, position, process),
                             return_exceptions=True)

    @staticmethod
    async def _to_program(reader, process):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            process.stdin.write(data)
            await process.stdin.drain()
        process.stdin.close()

    @staticmethod
    async def _from_program(process, writer):
        while True:
            data = await process.stdout.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _stderr(self, instance_id, position, process):
        while True:
            line = await process.stderr.readline()
            if not line:
                return
            self.log_line(instance_id, self.clock(), "stderr",
                          f"[n{position}] " + line.rstrip(b"\n").decode("utf-8", "replace"))

    def close(self, instance_id):
        """Node ``instance_id`` ended: stop listening and kill its program's process group."""
        server = self.servers.pop(instance_id, None)
        if server is not None:
            server.close()
        process = self.processes.pop(instance_id, None)
        if process is not None and process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
