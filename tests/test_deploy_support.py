"""Shared pieces of the deployment tests (no tests here): test applications, the CLI runner,
waiting on the controller's state, and finding a job's processes.

The deployment tests start real processes (controller, daemons, nodes) through
:class:`splay.deploy.testbed.Testbed` and talk to them over loopback only.
"""
import atexit
import importlib.util
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHONPATH = os.pathsep.join([os.path.join(ROOT, "python"), ROOT])
PG_DIR = "/tmp/pysplay-pg-tests"       # where the tests start PostgreSQL when none is given

# Prints LINES numbered lines, then stays up until killed.
COUNTER_APP = '''
import json, os, time
job = json.loads(os.environ["SPLAY_JOB"])
for i in range({lines}):
    print(f"node {{job['position']}} line {{i}}", flush=True)
    time.sleep(0.01)
time.sleep(3600)
'''

# Prints a line every 0.1 s, forever.
TICKER_APP = '''
import itertools, json, os, time
job = json.loads(os.environ["SPLAY_JOB"])
for i in itertools.count():
    print(f"node {job['position']} tick {i}", flush=True)
    time.sleep(0.1)
'''

# Prints where it runs and ends at once.
QUICK_APP = '''
import json, os
job = json.loads(os.environ["SPLAY_JOB"])
print(f"node {job['position']} at {job['me']['ip']}:{job['me']['port']} sees {len(job['nodes'])}")
'''


def write_app(directory, name, source):
    """Write an application file; returns its path."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(source)
    return path


def env_for(bed, **extra):
    """The environment of a `splay` command aimed at ``bed``'s controller."""
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, SPLAY_CONTROLLER=bed.url, SPLAY_TOKEN=bed.token,
               SPLAY_HOME=bed.dir)
    env.update(extra)
    return env


def splay_cli(bed, *args, timeout=120, **env):
    """Run ``python -m splay.cli ARGS`` against ``bed``; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "splay.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env_for(bed, **env))


def wait_for(condition, timeout=60.0, what="the condition"):
    """Poll ``condition()`` (it asks the controller or the system) until it returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def job_processes(ref):
    """PIDs of live processes whose SPLAY_JOB names job ``ref``."""
    needle = f'"ref": "{ref}"'.encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            pids.append(int(entry))
    return pids


def start_bed(tmp_path_factory, name, daemons, **options):
    """A started Testbed in a fresh directory (the caller stops it with ``down()``), on a range
    of ports free when it starts.

    Instances run without the sandbox: these tests are about deployment, and splay.sandbox has
    its own tests."""
    from splay.deploy.testbed import Testbed
    options.setdefault("daemon_args", ["--sandbox", "off"])
    options.setdefault("ports_per_daemon", 64)
    bed = Testbed(str(tmp_path_factory.mktemp(name)), daemons=daemons,
                  env=dict(os.environ, PYTHONPATH=PYTHONPATH), **options)
    try:
        bed.up()
    except BaseException:
        bed.down()
        raise
    return bed


def postgres_url():
    """The URL of a PostgreSQL server for tests: $PYSPLAY_PG_URL, else one started by
    scripts/start-postgres.sh. Skips the calling test, saying why, when none can be had."""
    import pytest
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    url = os.environ.get("PYSPLAY_PG_URL")
    if url:
        return url
    script = os.path.join(ROOT, "scripts", "start-postgres.sh")
    result = subprocess.run([script, PG_DIR, "55433"], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.skip(f"PostgreSQL could not be started: {result.stderr.strip()[-300:]}")
    # Started here, stopped when the test run ends.
    atexit.register(subprocess.run, [script, "stop", PG_DIR], capture_output=True, timeout=60)
    os.environ["PYSPLAY_PG_URL"] = url = result.stdout.strip().splitlines()[-1]
    return url


def fresh_postgres_database(url):
    """Create an empty database on the server of ``url``; returns (its URL, drop function)."""
    import psycopg
    name = f"splay_t{os.getpid()}_{random.randrange(10**9)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return url.rsplit("/", 1)[0] + "/" + name, drop
