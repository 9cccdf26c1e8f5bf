"""The step of faultline's GitHub Action (action.yml): `faultline check`
on the caller's server, then its verdicts as a Markdown table in the job
summary.

    /usr/bin/python3 -m faultline.action

Its inputs come as the action's step gives them (action.yml maps each
input to one variable): INPUT_SERVER_COMMAND (required), INPUT_PORT,
INPUT_CHECKS (names, separated by blanks or commas; empty: every check),
INPUT_PROTOCOL (echo or none), INPUT_ARTIFACTS (the run's folder, new or
empty). From the runner: GITHUB_STEP_SUMMARY (the job summary, appended
to), GITHUB_OUTPUT (the step's outputs: junit, json, artifacts, failed),
RUNNER_TEMP (where the JUnit XML and the JSON report go). Run outside a
runner, it writes no summary and no outputs and says where they would go.

Its exit status is faultline check's: 0 when every check passed (skips
allowed), 1 when one failed or erred (the step fails), 2 for bad inputs,
3 when hosts cannot be made here.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import paths

USAGE = 2
EVIDENCE_LINES = 30  # of each FAIL's evidence, in the summary; all of it is in the report


def inputs(env):
    """The inputs as `faultline check` arguments, or SystemExit with one line."""
    command = env.get("INPUT_SERVER_COMMAND", "").strip()
    if not command:
        raise SystemExit("faultline action: the input server-command is required "
                         "(the command that starts your server)")
    argv = ["--server-cmd", command, "--port", env.get("INPUT_PORT", "").strip() or "9877"]
    protocol = env.get("INPUT_PROTOCOL", "").strip()
    if protocol:
        argv += ["--protocol", protocol]
    for name in re.split(r"[\s,]+", env.get("INPUT_CHECKS", "").strip()):
        if name:
            argv += ["--check", name]
    argv += ["--artifacts", env.get("INPUT_ARTIFACTS", "").strip() or "faultline-artifacts"]
    return argv


def cell(text):
    """Text a Markdown table cell can hold: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def totals_line(report):
    t = report["totals"]
    parts = [f"{t['passed']} passed", f"{t['failed']} failed"]
    if t["errors"]:
        parts.append(f"{t['errors']} errors" if t["errors"] > 1 else "1 error")
    if t["skipped"]:
        parts.append(f"{t['skipped']} skipped")
    line = f"{t['checks']} check{'s' if t['checks'] != 1 else ''}: {', '.join(parts)}"
    return line + (" (interrupted)" if report["interrupted"] else "")


def summary_markdown(report):
    """The job summary of one run, from its JSON report (checkrun's
    Report.as_json): a table of the verdicts, then each failure's evidence,
    bounded."""
    lines = [f"### faultline check: {cell(report['describe'])}", "",
             "| check | verdict | what it saw | seconds |", "|---|---|---|---:|"]
    for c in report["checks"]:
        verdict = f"**{c['status']}**" if c["status"] in ("FAIL", "ERROR") else c["status"]
        lines.append(f"| `{c['name']}` | {verdict} | {cell(c['summary'])} | "
                     f"{c['seconds']:.1f} |")
    lines += ["", f"**{totals_line(report)}**; artifacts: `{report['artifacts']}`", ""]
    for c in report["checks"]:
        if c["status"] not in ("FAIL", "ERROR"):
            continue
        evidence = c["evidence"].splitlines()
        if len(evidence) > EVIDENCE_LINES:
            evidence = evidence[:EVIDENCE_LINES] + [
                f"... {len(evidence) - EVIDENCE_LINES} more lines in "
                f"{c['artifacts'][0] if c['artifacts'] else report['artifacts']}/"
                f"evidence.txt"]
        body = [*(f"note: {n}" for n in c["notes"]), *evidence]
        lines += [f"<details><summary>{c['status']} {c['name']}: {cell(c['summary'])}"
                  f"</summary>", "", "```text", *(b.replace("```", "'''") for b in body),
                  "```", "</details>", ""]
    return "\n".join(lines)


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def main(env=None):
    env = dict(os.environ if env is None else env)
    try:
        check_args = inputs(env)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return USAGE
    temp = Path(env.get("RUNNER_TEMP") or tempfile.gettempdir())
    json_path, junit_path = temp / "faultline-report.json", temp / "faultline-junit.xml"
    for stale in (json_path, junit_path):
        stale.unlink(missing_ok=True)
    python_dir = str(paths.PACKAGE.parent)
    run_env = {**env, "PYTHONPATH": os.pathsep.join(
        p for p in (python_dir, env.get("PYTHONPATH")) if p)}
    argv = [sys.executable, "-m", "faultline", "check", *check_args,
            "--json", str(json_path), "--junit", str(junit_path)]
    status = subprocess.run(argv, env=run_env).returncode

    if json_path.exists():
        report = json.loads(json_path.read_text())
        summary = summary_markdown(report)
        outputs = {"junit": junit_path, "json": json_path, "artifacts": report["artifacts"],
                   "failed": report["totals"]["failed"] + report["totals"]["errors"]}
    else:
        summary = (f"### faultline check\n\nIt ended with exit status {status} before "
                   f"any verdict: what it said is in the step's log.\n")
        outputs = {"failed": ""}
    where = env.get("GITHUB_STEP_SUMMARY")
    if where:
        append(where, summary + "\n")
    else:
        print("faultline action: no GITHUB_STEP_SUMMARY (not on a runner): the "
              "summary is not written", file=sys.stderr)
    if env.get("GITHUB_OUTPUT"):
        append(env["GITHUB_OUTPUT"], "".join(f"{k}={v}\n" for k, v in outputs.items()))
    return status


if __name__ == "__main__":
    sys.exit(main())
