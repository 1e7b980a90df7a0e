"""splayd and the controller as services (services/): the systemd units verify, the Kubernetes
manifests parse, every flag the units, manifests and container entrypoints pass exists in the
programs' --help, and the entrypoints start the real programs (a daemon joins the controller)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from splay.pytest_plugin import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = os.path.join(ROOT, "services")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
PROGRAMS = {"splayd": "splay.deploy.daemon", "splay-controller": "splay.deploy.controller"}
UNITS = ["splayd.service", "splay-controller.service"]
MANIFESTS = ["controller.yaml", "splayd-daemonset.yaml", "secrets.example.yaml"]
ENTRYPOINTS = {"splayd": "splayd-entrypoint.sh", "splay-controller": "controller-entrypoint.sh"}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """A directory holding `splayd` and `splay-controller` that run this checkout's programs."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, module in PROGRAMS.items():
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nexec {sys.executable} -m {module} "$@"\n')
        path.chmod(0o755)
    return bin_dir


def help_flags(program):
    text = subprocess.run([sys.executable, "-m", PROGRAMS[program], "--help"], env=ENV,
                          capture_output=True, text=True, timeout=30, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z-]*)", text))


def used_flags():
    """(where, program, flag) for every flag the units, manifests and entrypoints pass."""
    found = []
    for unit in UNITS:
        for line in open(os.path.join(SERVICES, "systemd", unit)):
            if line.startswith("ExecStart="):
                program = os.path.basename(line.split()[0].split("=", 1)[1])
                found += [(unit, program, f) for f in re.findall(r"(--[a-z][a-z-]*)", line)]
    for manifest in MANIFESTS:
        with open(os.path.join(SERVICES, "kubernetes", manifest)) as f:
            for doc in yaml.safe_load_all(f):
                spec = doc.get("spec", {}).get("template", {}).get("spec", {})
                for container in spec.get("containers", []):
                    program = container["command"][0]
                    found += [(manifest, program, a) for a in container["args"] if a.startswith("--")]
    for program, script in ENTRYPOINTS.items():
        text = open(os.path.join(SERVICES, "container", script)).read()
        command = text[text.index(f"exec {program}"):]
        found += [(script, program, f) for f in re.findall(r"(--[a-z][a-z-]*)", command)]
    return found


def test_every_manifest_parses_into_kubernetes_objects():
    kinds = []
    for manifest in MANIFESTS:
        with open(os.path.join(SERVICES, "kubernetes", manifest)) as f:
            kinds += [(doc["apiVersion"], doc["kind"]) for doc in yaml.safe_load_all(f)]
    assert sorted(kinds) == [("apps/v1", "DaemonSet"), ("apps/v1", "Deployment"),
                             ("v1", "Secret"), ("v1", "Service")]


def test_every_flag_used_exists_in_the_programs_help():
    flags = {program: help_flags(program) for program in PROGRAMS}
    used = used_flags()
    assert {program for _, program, _ in used} == set(PROGRAMS)
    unknown = [(where, program, flag) for where, program, flag in used if flag not in flags[program]]
    assert unknown == []
    assert len(used) >= 20


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_verify(tmp_path, programs):
    paths = []
    for unit in UNITS:
        text = open(os.path.join(SERVICES, "systemd", unit)).read()
        # systemd checks that ExecStart's program exists: point it at this checkout's
        (tmp_path / unit).write_text(text.replace("/usr/local/bin/", f"{programs}/"))
        paths.append(str(tmp_path / unit))
    result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_container_entrypoints_start_a_controller_and_a_daemon_that_joins_it(tmp_path, programs):
    daemon_port = free_ports(2)
    api_port = daemon_port + 1
    (tmp_path / "token").write_text("test-token\n")
    (tmp_path / "key").write_text("test-key\n")
    env = dict(ENV, PATH=f"{programs}{os.pathsep}{os.environ['PATH']}")
    controller_env = dict(env, SPLAY_DB=str(tmp_path / "controller.db"),
                          SPLAY_LISTEN=f"127.0.0.1:{daemon_port}", SPLAY_API=f"127.0.0.1:{api_port}",
                          SPLAY_TOKEN_FILE=str(tmp_path / "token"),
                          SPLAY_DAEMON_KEY_FILE=str(tmp_path / "key"))
    first = free_ports(10)
    daemon_env = dict(env, SPLAYD_CONTROLLER=f"127.0.0.1:{daemon_port}", SPLAYD_KEY_FILE=str(tmp_path / "key"),
                      SPLAYD_IP="127.0.0.1", SPLAYD_DIR=str(tmp_path / "jobs"), SPLAYD_NAME="entry")
    script = lambda name: os.path.join(SERVICES, "container", name)
    ready = tmp_path / "ready.json"
    controller = subprocess.Popen([script("controller-entrypoint.sh"), "--ready-file", str(ready)],
                                  env=controller_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    daemon = None
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert controller.poll() is None, controller.stderr.read().decode()
            assert time.monotonic() < deadline, "the controller did not get ready in 30 s"
            time.sleep(0.1)
        daemon = subprocess.Popen([script("splayd-entrypoint.sh"), "--ports", f"{first}-{first + 9}",
                                   "--sandbox", "off"], env=daemon_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/daemons",
                                         headers={"Authorization": "Bearer test-token"})
        while True:
            rows = json.load(urllib.request.urlopen(request, timeout=10))
            if any(r["name"] == "entry" and r["state"] == "CONNECTED" for r in rows):
                break
            assert daemon.poll() is None, daemon.stderr.read().decode()
            assert time.monotonic() < deadline + 30, f"the daemon did not join: {rows}"
            time.sleep(0.1)
    finally:
        for process in (daemon, controller):
            if process is not None:
                process.kill()
                process.wait()
