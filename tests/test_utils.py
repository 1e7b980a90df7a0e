"""splay.utils: generate_job (the manual's fake job for local runs), local_nodes, job_from_argv."""
import os
import pathlib
import random
import subprocess
import sys

import pytest

from splay import Node, utils
from splay.job import Job
from support_log import check_module_logger

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_generate_job_head_list_contains_me_at_position():
    job = utils.generate_job(3, 10)
    assert isinstance(job, Job)
    assert job.position == 3 and job.me == Node("127.0.0.1", 20003)
    assert job.list_type == "head"
    assert job.nodes() == [Node("127.0.0.1", 20000 + i) for i in range(10)]
    assert job.nodes()[job.position] == job.me


def test_generate_job_defaults_follow_the_manual():
    job = utils.generate_job(0)
    assert len(job.nodes()) == 50 and job.me.port == 20000


def test_generate_job_first_port_and_list_size():
    job = utils.generate_job(1, 8, first_port=30000, list_size=3)
    assert job.me == Node("127.0.0.1", 30001)
    assert job.nodes() == [Node("127.0.0.1", 30000 + i) for i in range(3)]
    assert job.nodes()[job.position] == job.me
    outside = utils.generate_job(5, 8, first_port=30000, list_size=3)
    assert outside.me not in outside.nodes() and len(outside.nodes()) == 3


def test_generate_job_random_list_never_contains_me():
    for position in range(10):
        job = utils.generate_job(position, 10, list_size=4, random=True)
        view = job.nodes()
        assert job.list_type == "random"
        assert len(view) == 4 and len(set(view)) == 4
        assert job.me not in view
        assert all(20000 <= n.port < 20010 for n in view)


def test_generate_job_random_without_size_gives_all_others():
    job = utils.generate_job(2, 6, random=True)
    assert sorted(job.nodes()) == [Node("127.0.0.1", p) for p in (20000, 20001, 20003, 20004, 20005)]


def test_generate_job_random_list_size_larger_than_others_is_capped():
    job = utils.generate_job(0, 3, list_size=10, random=True)
    assert sorted(job.nodes()) == [Node("127.0.0.1", 20001), Node("127.0.0.1", 20002)]


def test_generate_job_random_is_reproducible_with_rng():
    a = utils.generate_job(4, 100, list_size=10, random=True, rng=random.Random(7))
    b = utils.generate_job(4, 100, list_size=10, random=True, rng=random.Random(7))
    assert a.nodes() == b.nodes()


def test_generate_job_passes_extra_fields(tmp_path):
    job = utils.generate_job(0, 2, ref="r", name="n", dir=str(tmp_path), settings={"a": 1})
    assert (job.ref, job.name, job.dir, job.settings) == ("r", "n", str(tmp_path), {"a": 1})


def test_generate_job_survives_json_round_trip():
    job = utils.generate_job(2, 5, list_size=2, random=True)
    back = Job.from_json(job.to_json())
    assert back.nodes() == job.nodes() and back.me == job.me and back.list_size == 2


@pytest.mark.parametrize("args, message", [
    ((5, 5), "position must be an integer from 0 to 4"),
    ((-1, 5), "position must be an integer from 0 to 4"),
    ((0, 0), "nb_nodes must be an integer >= 1"),
    ((0, 10, 65530), "need ports up to 65539, past 65535"),
    ((0, 10, 0), "first_port must be an integer from 1 to 65535"),
    ((0, 10, 20000, -1), "list_size must be an integer >= 0"),
    (("0", 10), "position must be an integer"),
])
def test_generate_job_bad_input(args, message):
    with pytest.raises(ValueError) as err:
        utils.generate_job(*args)
    assert message in str(err.value)


def test_local_nodes():
    assert utils.local_nodes(3, 40000) == [Node("127.0.0.1", p) for p in (40000, 40001, 40002)]
    assert utils.local_nodes(1, 65535) == [Node("127.0.0.1", 65535)]
    with pytest.raises(ValueError, match="at most 65526"):
        utils.local_nodes(10, 65530)


def test_job_from_argv_builds_a_job_from_position_and_count():
    job = utils.job_from_argv(["2", "4"], first_port=21000)
    assert job.position == 2 and job.me.port == 21002 and len(job.nodes()) == 4


def test_job_from_argv_without_arguments_explains_usage():
    with pytest.raises(ValueError, match="POSITION NB_NODES"):
        utils.job_from_argv([])
    with pytest.raises(ValueError, match="POSITION NB_NODES"):
        utils.job_from_argv(["x", "3"])


def test_splay_job_stays_none_after_importing_utils():
    # A fresh interpreter: importing splay.utils (which imports the splay.job module) must not
    # leave the module object where applications look for their job.
    code = "import splay, splay.utils; print(splay.job is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)])))
    assert out.stdout.strip() == "True", out.stderr


def test_module_logger_l_o():
    check_module_logger(utils, "utils")
