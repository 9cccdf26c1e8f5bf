"""The GitHub Action (action.yml) and its step's script
(python/faultline/action.py), run here as the runner runs them: the step's
own bash from action.yml, its inputs substituted, with the environment a
runner gives (GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, RUNNER_TEMP,
GITHUB_WORKSPACE as the working directory, GITHUB_ACTION_PATH at this
checkout). It has not run on GitHub from here.

action.yml's metadata is checked against the keys GitHub documents for a
composite action ("Metadata syntax for GitHub Actions"); actionlint lints
workflows, not an action's metadata (.ci/run runs it on .github/workflows).
"""

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from faultline import action, paths

pytestmark = pytest.mark.cli

ACTION = yaml.safe_load((paths.REPO / "action.yml").read_text())
SOCAT = "socat TCP-LISTEN:9877,fork,reuseaddr EXEC:cat"

# docs.github.com, "Metadata syntax for GitHub Actions".
TOP_KEYS = {"name", "author", "description", "inputs", "outputs", "runs", "branding"}
INPUT_KEYS = {"description", "required", "default", "deprecationMessage"}
COMPOSITE_OUTPUT_KEYS = {"description", "value"}
COMPOSITE_STEP_KEYS = {"run", "shell", "uses", "with", "name", "id", "if", "env",
                       "continue-on-error", "working-directory"}


def test_action_metadata_has_only_documented_keys():
    assert TOP_KEYS >= set(ACTION) >= {"name", "description", "runs"}, sorted(ACTION)
    bad = [f"inputs.{n}.{k}" for n, i in ACTION["inputs"].items()
           for k in set(i) - INPUT_KEYS]
    bad += [f"outputs.{n}.{k}" for n, o in ACTION["outputs"].items()
            for k in set(o) ^ COMPOSITE_OUTPUT_KEYS]
    assert ACTION["runs"]["using"] == "composite" and set(ACTION["runs"]) == {
        "using", "steps"}, ACTION["runs"]
    for step in ACTION["runs"]["steps"]:
        bad += [f"step {step.get('name')}: {k}" for k in set(step) - COMPOSITE_STEP_KEYS]
        if "run" in step and "shell" not in step:
            bad.append(f"step {step.get('name')}: run without shell (required in composite)")
    assert not bad, bad


def test_every_input_the_action_uses_is_declared_and_each_reaches_the_script():
    text = (paths.REPO / "action.yml").read_text()
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", text))
    assert used == set(ACTION["inputs"]), (used, sorted(ACTION["inputs"]))
    env = check_step()["env"]
    assert {f"INPUT_{n.upper().replace('-', '_')}" for n in ACTION["inputs"]} == set(env)
    script = (paths.REPO / "python" / "faultline" / "action.py").read_text()
    assert all(f'"{name}"' in script for name in env), [n for n in env if n not in script]


def test_every_output_is_one_the_script_writes():
    for name, output in ACTION["outputs"].items():
        assert output["value"] == f"${{{{ steps.check.outputs.{name} }}}}", output
        assert f'"{name}"' in (paths.REPO / "python/faultline/action.py").read_text(), name


def check_step():
    step, = [s for s in ACTION["runs"]["steps"] if s.get("id") == "check"]
    return step


def run_step(tmp_path, **inputs):
    """The check step as the runner runs it: its env with the inputs (and
    the defaults of those not given) in place of the ${{ }} expressions."""
    values = {n: str(i.get("default", "")) for n, i in ACTION["inputs"].items()}
    values.update({k.replace("_", "-"): v for k, v in inputs.items()})
    step = check_step()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "FAULTLINE_", "INPUT_", "GITHUB_"))}
    for name, value in step["env"].items():
        env[name] = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}",
                           lambda m: values[m.group(1)], value)
    runner = {"workspace": tmp_path / "workspace", "temp": tmp_path / "runner-temp"}
    for folder in runner.values():
        folder.mkdir()
    summary, output = tmp_path / "step_summary.md", tmp_path / "output"
    summary.touch()
    output.touch()
    env.update(GITHUB_ACTION_PATH=str(paths.REPO), GITHUB_WORKSPACE=str(runner["workspace"]),
               GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(output),
               RUNNER_TEMP=str(runner["temp"]), CI="true", GITHUB_ACTIONS="true",
               FAULTLINE_BUILD_DIR=str(paths.BUILD_DIR))
    proc = subprocess.run([shutil.which("bash"), "-e", "-c", step["run"]],
                          cwd=runner["workspace"], env=env, capture_output=True,
                          text=True, timeout=180)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return proc, summary.read_text(), outputs


def seen(proc, summary="", limit=3000):
    return (f"\nexit {proc.returncode}\n--- stdout\n{proc.stdout[-limit:]}\n--- stderr\n"
            f"{proc.stderr[-limit:]}\n--- job summary\n{summary[-limit:]}")


@pytest.fixture(scope="module")
def failing_run(hosts_possible, tmp_path_factory):
    zoo = paths.BUILD_DIR / "zoo" / "fork_no_sigchld_handler"
    return run_step(tmp_path_factory.mktemp("action-fail"), server_command=f"{zoo} 7000",
                    port="7000", checks="zombies, binary-echo")


def test_a_failing_check_fails_the_step(failing_run):
    proc, summary, outputs = failing_run
    assert proc.returncode == 1 and outputs.get("failed") == "1", seen(proc, summary)


def test_the_job_summary_has_the_table_of_verdicts(failing_run):
    proc, summary, _ = failing_run
    rows = [line for line in summary.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1:3] for r in rows] == [[" `zombies` ", " **FAIL** "],
                                                 [" `binary-echo` ", " pass "]], (
        seen(proc, summary))
    assert "never reaped" in rows[0] and "<defunct>" in summary, seen(proc, summary)


def test_the_junit_file_has_the_failure(failing_run):
    proc, summary, outputs = failing_run
    cases = {c.get("name"): c for c in ET.parse(outputs["junit"]).iter("testcase")}
    assert set(cases) == {"zombies", "binary-echo"}, seen(proc, summary)
    assert cases["zombies"].find("failure") is not None, seen(proc, summary)
    assert cases["binary-echo"].find("failure") is None, seen(proc, summary)


def test_a_passing_server_passes_the_step(hosts_possible, tmp_path):
    proc, summary, outputs = run_step(tmp_path, server_command=SOCAT, checks="zombies")
    assert proc.returncode == 0 and "| `zombies` | pass |" in summary, seen(proc, summary)
    assert outputs.get("failed") == "0", seen(proc, summary)
    assert os.path.isdir(outputs["artifacts"]) and outputs["artifacts"].startswith(
        str(tmp_path / "workspace")), outputs


def test_no_server_command_is_one_line_and_exit_2(tmp_path):
    proc, summary, _ = run_step(tmp_path, server_command="")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, seen(proc)
    assert "server-command is required" in proc.stderr, seen(proc)


def test_the_summary_holds_any_text_in_its_cells_and_bounds_the_evidence():
    evidence = "\n".join(f"row {n}" for n in range(action.EVIDENCE_LINES + 5))
    report = {"describe": "'srv | tee' on port 1", "artifacts": "/a", "interrupted": False,
              "totals": {"checks": 1, "passed": 0, "failed": 1, "errors": 0, "skipped": 0},
              "checks": [{"name": "eintr", "status": "FAIL", "summary": "a|b\nc",
                          "evidence": evidence, "notes": [], "artifacts": ["/a/eintr"],
                          "seconds": 1.0}]}
    text = action.summary_markdown(report)
    assert "| `eintr` | **FAIL** | a\\|b c | 1.0 |" in text, text
    assert f"row {action.EVIDENCE_LINES - 1}\n... 5 more lines in /a/eintr/evidence.txt" \
        in text, text
    assert "**1 check: 0 passed, 1 failed**" in text, text
