"""Run checkov over infra/ (Bicep framework, offline) and fail on any finding that is not
justified in the Bicep itself.

A finding is justified only by an inline `//checkov:skip=CKV_...: reason` comment in the
resource it concerns, with a reason long enough to say why the check cannot apply (see
docs/deploy.md, "Hardening checks"). The gate fails on: a failed check, a skip without a
real reason, a file checkov could not parse, and a scan that saw no resources at all
(a broken run must not pass as a clean one).

    python infra/checkov_gate.py [--checkov PATH] [--timeout SECONDS]

checkov is found through --checkov, then $CHECKOV, then PATH. It is not an app or test
dependency (it is a ~270 MB tool with its own pins); `make checkov` installs it in its own
virtualenv. Exit status: 0 clean, 1 unjustified findings, 2 checkov missing or broken.
Standard library only, so it runs under any Python that can start checkov.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
MIN_REASON_CHARS = 30  # "n/a" or "false positive" is not a justification
DEFAULT_TIMEOUT_S = 600


class CheckovUnavailable(RuntimeError):
    """checkov is not installed, or its run produced no usable report."""


def find_checkov(explicit: str | None = None) -> str | None:
    for candidate in (explicit, os.environ.get("CHECKOV")):
        if candidate:
            return candidate if Path(candidate).is_file() else shutil.which(candidate)
    return shutil.which("checkov")


def run_checkov(checkov: str, directory: Path = INFRA, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """The JSON report of one offline bicep scan of `directory`."""
    cmd = [checkov, "-d", str(directory), "--framework", "bicep", "--skip-download", "-o", "json"]
    # checkov exits 1 when checks fail; only a missing/garbled report is a broken run.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise CheckovUnavailable(f"checkov gave no JSON report (exit {proc.returncode}): {proc.stderr[-2000:]}") from exc
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if isinstance(r, dict) and r.get("check_type") == "bicep"]
    if not bicep:
        raise CheckovUnavailable(f"checkov report has no bicep section: {str(report)[:500]}")
    return bicep[0]


def _where(check: dict) -> str:
    lines = check.get("file_line_range") or ["?", "?"]
    return f"{check.get('file_path', '?')}:{lines[0]} {check.get('resource', '?')}"


def problems(report: dict) -> list[str]:
    """Every unjustified finding of one checkov bicep report, as readable lines."""
    out: list[str] = []
    summary = report.get("summary", {})
    results = report.get("results", {})
    if summary.get("parsing_errors", 0):
        out.append(f"{summary['parsing_errors']} file(s) checkov could not parse: {results.get('parsing_errors')}")
    if not summary.get("resource_count", 0):
        out.append("checkov scanned no resources: the scan did not run on the templates")
    for check in results.get("failed_checks", []):
        out.append(f"FAILED {check['check_id']} ({check.get('check_name', '')}) at {_where(check)}")
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        if len(reason) < MIN_REASON_CHARS:
            out.append(f"SKIPPED {check['check_id']} without a real reason ({reason!r}) at {_where(check)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", help="checkov executable (default: $CHECKOV, then PATH)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before the scan is abandoned")
    args = parser.parse_args(argv)
    checkov = find_checkov(args.checkov)
    if not checkov:
        print("checkov not found: install it (make checkov) or pass --checkov / set CHECKOV", file=sys.stderr)
        return 2
    try:
        report = run_checkov(checkov, INFRA, args.timeout)
    except (CheckovUnavailable, subprocess.TimeoutExpired, OSError) as exc:
        print(f"checkov run failed: {exc}", file=sys.stderr)
        return 2
    summary = report["summary"]
    print(f"checkov {summary.get('checkov_version')}: {summary.get('passed')} passed, "
          f"{summary.get('failed')} failed, {summary.get('skipped')} skipped (justified in the Bicep)")
    for check in report["results"].get("skipped_checks", []):
        print(f"  skip {check['check_id']} {check.get('resource')}: "
              f"{check['check_result'].get('suppress_comment', '').strip()}")
    found = problems(report)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
