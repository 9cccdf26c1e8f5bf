"""Bring your own server: every check of python/faultline/checks.py against the
command given with --server-cmd (one skip without it).

    pytest pytest/test_byo.py --server-cmd 'socat TCP-LISTEN:9877,fork,reuseaddr EXEC:cat'
    pytest -k zombies --server-cmd './my-server' --server-port 7000

The same checks as `./faultline check`, one test each.
"""


from faultline import checks
from faultline.checkrun import run_check
from faultline.server import Server


def pytest_generate_tests(metafunc):
    if "chk" in metafunc.fixturenames:
        given = metafunc.config.getoption("--server-cmd")
        chosen = checks.CHECKS if given else []
        metafunc.parametrize("chk", chosen, ids=[c.name for c in chosen])


def test_your_server(request, host, artifact_dir, chk):
    command = request.config.getoption("--server-cmd")
    port = request.config.getoption("--server-port")
    verdict = run_check(chk, host, lambda h: Server(h, command, port), artifact_dir)
    assert verdict.passed, f"{chk.title}: {verdict.summary}\n{verdict.evidence}"
