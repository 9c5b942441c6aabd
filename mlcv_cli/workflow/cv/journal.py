"""The cv run's files: jobs.jsonl (one line per finished job, checked against the plan on resume) and
cv_results.csv."""

from __future__ import annotations

import json
import os

from ...errors import MlcvError
from ...runs.rundir import RunDir, read_run_file
from ...system import atomic
from .jobs import job_rows_problem

JOBS_FILE = "jobs.jsonl"
# A journal line holds one job's rows (a kNN job: one row per k); far past what MAX_JOBS
# jobs write, far below what would exhaust the memory.
JOURNAL_LIMIT = 1 << 30


RESULTS_FILE = "cv_results.csv"


REJECTED_FILE = "jobs.rejected.jsonl"


def _no_constants(name):
    raise ValueError(f"{name} is not a number JSON allows")


def read_journal(run: RunDir, jobs, n_points):
    """(job id -> rows, warning or None) from jobs.jsonl, checked against the plan's jobs.

    A record that does not fit the plan (unknown job, wrong folds or points, NaN or
    out-of-range accuracy, malformed JSON) is not trusted: its job runs again. Two
    different records for one job are both dropped. A torn last line (a crash mid-append)
    is cut off, and when anything was dropped the journal is rewritten without it (the
    dropped lines are kept in jobs.rejected.jsonl), so the next append starts clean.
    The caller holds the run's lock.
    """
    path = run.file(JOBS_FILE)
    try:
        data = read_run_file(path, JOURNAL_LIMIT)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        raise MlcvError(f"{path} is unreadable ({exc.strerror or exc}); the run directory is damaged") from None
    by_id = {j["id"]: j for j in jobs}
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: b"" unless a crash cut a record short
    accepted, rejected, problems, kept_lines = {}, [], [], {}
    for number, raw in enumerate(lines + ([torn] if torn else []), start=1):
        problem = None
        try:
            rec = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                problem = "not a job record"
            elif rec["id"] not in by_id:
                problem = f"job {rec['id']!r} is not in the plan"
            else:
                problem = job_rows_problem(by_id[rec["id"]], rec.get("rows"), n_points)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            problem = "torn by a crash" if raw is torn else f"not JSON ({exc})"
        if problem:
            rejected.append(raw)
            problems.append(f"line {number}: {problem}")
            continue
        if rec["id"] in accepted and accepted[rec["id"]] != rec["rows"]:
            problems.append(f"line {number}: a second, different result for job {rec['id']}")
            rejected.extend([kept_lines.pop(rec["id"]), raw])
            accepted[rec["id"]] = None  # neither record is trusted
            continue
        if rec["id"] in accepted:  # an exact repeat: harmless
            continue
        accepted[rec["id"]] = rec["rows"]
        kept_lines[rec["id"]] = raw
    finished = {k: v for k, v in accepted.items() if v is not None}
    if not rejected:
        return finished, None
    if rejected == [torn] and torn:  # only the torn tail: cut it off in place
        _truncate(path, len(data) - len(torn))
    else:
        atomic.write_bytes(run.file(REJECTED_FILE), _read_or_empty(run.file(REJECTED_FILE)) + b"".join(r + b"\n" for r in rejected))
        atomic.write_bytes(path, b"".join(raw + b"\n" for raw in kept_lines.values()))
    warning = (
        f"{path.name}: {len(problems)} record(s) did not fit the plan and were set aside in {REJECTED_FILE} "
        f"({'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''}); their jobs run again"
    )
    return finished, warning


def _read_or_empty(path):
    try:
        return read_run_file(path, JOURNAL_LIMIT)
    except FileNotFoundError:
        return b""


def _truncate(path, size):
    try:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise atomic.describe_os_error(path, exc) from exc


def append_job(run: RunDir, job_id, rows):
    atomic.append_line(run.file(JOBS_FILE), json.dumps({"id": job_id, "rows": rows}))


def write_results(run, points, rows):
    keys = sorted({k for p in points for k in p})
    run.write_csv(RESULTS_FILE, [{**points[r["point"]], **r} for r in rows], ["point", *keys, "fold", "accuracy", "time_s", "note"])
