"""The conformance suite: every check that holds for any sound echo server
(python/faultline/checks.py), against every echod concurrency model. A failure
prints what the check saw: the process table, the sockets, descriptors.

thread, poll and epoll run with --sigpipe ignore: in a single-process
server a SIGPIPE at its default disposition kills every session at once
(dead-peer-write provokes it; the lesson has its own test in
test_sigpipe.py). fork and prefork keep the default: a child that dies of
it ends only its own session. prefork runs with a pool larger than the 100
concurrent clients of concurrent-clients: a pool of blocking workers
serves as many sessions at once as it has workers.
"""

import pytest

from faultline import checks
from faultline.checkrun import run_check
from faultline.echod import Echod

pytestmark = pytest.mark.conformance

MODELS = {
    "fork": [],
    "thread": ["--sigpipe", "ignore"],
    "prefork": ["--workers", "128"],
    "poll": ["--sigpipe", "ignore"],
    "epoll": ["--sigpipe", "ignore"],
}


@pytest.mark.parametrize("chk", checks.CHECKS, ids=[c.name for c in checks.CHECKS])
@pytest.mark.parametrize("model", MODELS)
def test_model_conforms(host, artifact_dir, model, chk):
    verdict = run_check(
        chk, host, lambda h: Echod(h, model=model, args=MODELS[model]), artifact_dir)
    assert verdict.passed, (f"--model {model}: {chk.title}: {verdict.summary}\n"
                            f"{verdict.evidence}")
