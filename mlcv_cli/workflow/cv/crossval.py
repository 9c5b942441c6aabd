"""k-fold cross-validation over a hyperparameter grid: plan, run (serially, in local
processes, or on a Dask cluster), record, resume, summarise. Returns results; never prints.

A *job* is one fold of one grid point (linear models) or one fold of a group of kNN
points that differ only in k: the group's distances are computed once and every k is
scored from one sorted neighbour list. Each job's seed comes from (run seed, grid point,
fold), so results do not depend on the executor or the order in which jobs finish.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import signal
import time

import numpy as np

from ... import config as config_mod
from ...config import Config
from ...core.linear import TrainingDiverged
from ...core.model_selection import job_seed, parameter_grid, stratified_kfold
from ...errors import ConfigError, MlcvError, UsageError
from ...runs import fingerprints
from ...runs.rundir import RunDir, command_line
from ...system import atomic, threads
from ...system import cluster as cluster_mod
from ...system.signals import Terminated, sigterm_raises

JOBS_FILE = "jobs.jsonl"
PLAN_FILE = "cv_plan.json"
RESULTS_FILE = "cv_results.csv"
REJECTED_FILE = "jobs.rejected.jsonl"
# Each job is a fit and a journal line; many folds (leave-one-out on 50,000 images) times many
# points would be hundreds of millions of both.
MAX_JOBS = 200_000


# -- the plan ---------------------------------------------------------------------------


def grid_points(grid: dict, random_n: int | None = None, seed: int = 0) -> list:
    """The full grid as a list of {dotted key: value}, or ``random_n`` random points.

    Random points are drawn per key: positive numbers on a log scale between the
    smallest and largest listed value (integers rounded), anything else from the list.
    """
    if not random_n:
        config_mod.check_grid_size(grid)  # counted before it is expanded
        return parameter_grid(grid)
    keys = list(grid)
    rng = np.random.default_rng([seed, 7])
    points = []
    for _ in range(random_n):
        point = {}
        for key in keys:
            values = grid[key]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric and len(values) > 1 and min(values) > 0:
                lo, hi = math.log10(min(values)), math.log10(max(values))
                v = 10 ** rng.uniform(lo, hi)
                if all(isinstance(x, int) for x in values):
                    v = int(round(v))
                else:
                    v = float(f"{v:.4g}")
                point[key] = v
            else:
                point[key] = values[int(rng.integers(len(values)))]
        points.append(point)
    return points


def plan_jobs(cfg: Config, points: list) -> list:
    """Jobs for every (grid point, fold); kNN points that differ only in model.k share one job.

    More than MAX_JOBS is a ConfigError, counted before any job is made.
    """
    if cfg.model.type == "knn":
        groups = [(f"g{g}", members) for g, members in enumerate(_knn_groups(points))]
    else:
        groups = [(f"p{i}", [i]) for i in range(len(points))]
    if len(groups) * cfg.cv.folds > MAX_JOBS:
        raise ConfigError(
            f"cv: {len(groups):,} grid point(s) x {cfg.cv.folds:,} folds = {len(groups) * cfg.cv.folds:,} jobs, more than the "
            f"limit of {MAX_JOBS:,}; use fewer folds (5 or 10 is usual) or fewer grid points"
        )
    return [{"id": f"{name}-f{fold}", "points": members, "fold": fold} for name, members in groups for fold in range(cfg.cv.folds)]


def _knn_groups(points) -> list:
    """Indices of the kNN points that differ only in model.k, one list per group."""
    groups = {}
    for i, point in enumerate(points):
        rest = tuple(sorted((k, json.dumps(v)) for k, v in point.items() if k != "model.k"))
        groups.setdefault(rest, []).append(i)
    return list(groups.values())


# -- one job ------------------------------------------------------------------------------


def run_job(job: dict, plan: dict, data: tuple, blas_threads: int | None = None) -> list:
    """Score one job; returns one result row per grid point in it.

    ``data`` is (images uint8 (N, H, W, 3) or their EncodedFeatures, labels (N,),
    num_classes); plain pixels (mean image) are fitted on the fold's training part only.
    """
    from ...config.features import build_chain
    from ...data.feature_cache import fold_features
    from ...models.build import build_estimator, knn_searches_pixels

    images, labels, C = data
    cfg = config_mod.from_dict(plan["config"])
    folds = stratified_kfold(labels, cfg.cv.folds, seed=cfg.seed)
    train_idx, val_idx = folds[job["fold"]]
    points = [plan["points"][i] for i in job["points"]]
    base = config_mod.replace(cfg, points[0])
    if cfg.model.type == "knn" and isinstance(images, np.ndarray) and knn_searches_pixels("knn", build_chain(base)):
        Xtr = images[train_idx].reshape(len(train_idx), -1)  # see knn_searches_pixels
        Xva = images[val_idx].reshape(len(val_idx), -1)
    else:
        Xtr, Xva = fold_features(base, images, train_idx, val_idx)
    ytr, yva = labels[train_idx], labels[val_idx]
    t0 = time.perf_counter()
    rows = []
    if cfg.model.type == "knn":
        ks = [p.get("model.k", cfg.model.k) for p in points]  # cross_validate checked them against the folds
        est = build_estimator(base).set_params(n_jobs=blas_threads)
        est.fit(Xtr, ytr, num_classes=C)
        preds = est.predict_for_ks(Xva, ks)
        elapsed = time.perf_counter() - t0
        for i, k in zip(job["points"], ks):
            rows.append(_row(i, job["fold"], float(np.mean(preds[k] == yva)), elapsed / len(ks)))
    else:
        i = job["points"][0]
        job_cfg = config_mod.replace(base, {"seed": job_seed(cfg.seed, i, job["fold"])})
        est = build_estimator(job_cfg)
        try:
            with threads.for_linear_fit(job_cfg.train.optimizer):
                est.fit(Xtr, ytr, num_classes=C)
            acc = float(np.mean(est.predict(Xva) == yva))
            note = ""
        except TrainingDiverged as exc:  # a diverging grid point scores 0, the search goes on
            acc, note = 0.0, f"diverged: {exc}"
        rows.append(_row(i, job["fold"], acc, time.perf_counter() - t0, note))
    return rows


def _row(point, fold, accuracy, seconds, note=""):
    return {"point": point, "fold": fold, "accuracy": accuracy, "time_s": round(seconds, 4), "note": note}


_WORKER_STATE = {}


def _init_worker(plan, data, threads, parent_pid=None):
    _die_with_parent(parent_pid)
    _WORKER_STATE.update(plan=plan, data=data, threads=threads)


def _die_with_parent(parent_pid):
    """End this worker when the cv process that started it dies, even by SIGKILL: an orphaned
    worker would go on holding the data (and a core) for nobody."""
    if parent_pid is None:
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before the request took effect
                os._exit(1)
            return
    except (OSError, AttributeError):  # not Linux
        pass
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="mlcv-parent-watch", daemon=True).start()


def _run_in_worker(job):
    return job["id"], run_job(job, _WORKER_STATE["plan"], _WORKER_STATE["data"], _WORKER_STATE["threads"])


def _run_on_dask(job, plan, data, token):
    # The answer names the run and job it belongs to; the client checks both on arrival.
    return {"run": token, "job": job["id"], "rows": run_job(job, plan, data, 1)}


def job_rows_problem(job, rows, n_points):
    """Why ``rows`` cannot be the result of ``job`` (a plan job), or None when they can.

    Results are checked wherever they come from (a worker, a cluster, jobs.jsonl): one
    row per grid point of the job, in order, for the job's fold, with a finite accuracy
    in [0, 1] -- anything else would change the best setting without a word.
    """
    if not isinstance(rows, list) or len(rows) != len(job["points"]):
        return f"expected {len(job['points'])} result row(s)"
    for point, row in zip(job["points"], rows):
        if not isinstance(row, dict):
            return "a row is not an object"
        if row.get("point") != point or type(row.get("point")) is not int or not 0 <= point < n_points:
            return f"expected grid point {point}, found {row.get('point')!r}"
        if row.get("fold") != job["fold"] or type(row.get("fold")) is not int:
            return f"expected fold {job['fold']}, found {row.get('fold')!r}"
        acc = row.get("accuracy")
        if type(acc) not in (int, float) or not math.isfinite(acc) or not 0 <= acc <= 1:
            return f"accuracy {acc!r} is not a number in [0, 1]"
        t = row.get("time_s")
        if type(t) not in (int, float) or not math.isfinite(t) or t < 0:
            return f"time_s {t!r} is not a non-negative number"
        if not isinstance(row.get("note", ""), str):
            return "note is not text"
    return None


# -- executors ------------------------------------------------------------------------------


_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@contextlib.contextmanager
def _executor(n_jobs, dask_scheduler, dask_timeout=None, resume_hint=""):
    """Yield ``execute(jobs, plan, data, on_done)`` for the chosen executor.

    A Dask cluster is reached on entry, so an unreachable scheduler fails before any
    run directory is made.
    """
    if dask_scheduler:
        timeout = dask_timeout or cluster_mod.DEFAULT_TIMEOUT
        with contextlib.ExitStack() as stack:
            try:
                client = stack.enter_context(_dask_client(dask_scheduler, n_jobs, timeout))
            except MlcvError as exc:
                exc.args = (f"{exc}{resume_hint}",)
                raise
            yield lambda jobs, plan, data, on_done: _execute_dask(client, jobs, plan, data, on_done, timeout)
    elif n_jobs <= 1:
        def serial(jobs, plan, data, on_done):
            for job in jobs:
                on_done(job["id"], run_job(job, plan, data))

        yield serial
    else:
        yield lambda jobs, plan, data, on_done: _execute_processes(jobs, plan, data, n_jobs, on_done)


def _execute_processes(jobs, plan, data, n_jobs, on_done):
    import concurrent.futures as cf
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    # Workers are spawned (fresh interpreters), so these limits apply before their BLAS
    # starts: N workers x threads never oversubscribes the cores.
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    os.environ.update({k: str(threads) for k in _BLAS_ENV})
    try:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(plan, data, threads, os.getpid())) as pool:
            futures = [pool.submit(_run_in_worker, job) for job in jobs]
            workers = dict(getattr(pool, "_processes", None) or {})  # pid -> Process, to say which one died
            recorded = set()
            try:
                for fut in cf.as_completed(futures):
                    on_done(*fut.result())
                    recorded.add(fut)
            except BaseException as exc:
                for fut in futures:
                    fut.cancel()
                if not isinstance(exc, cf.process.BrokenProcessPool):
                    raise
                # Results that arrived before the pool broke are kept.
                for fut in futures:
                    if fut not in recorded and fut.done() and not fut.cancelled() and fut.exception() is None:
                        on_done(*fut.result())
                pool.shutdown(wait=True)  # joins the workers, so their exit codes are known
                raise ExecutorLost(_dead_workers(workers)) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ExecutorLost(MlcvError):
    """The processes running the jobs are gone (a worker killed, a cluster lost); finished jobs are kept."""


def _dead_workers(workers) -> str:
    dead = []
    for pid, proc in workers.items():
        code = getattr(proc, "exitcode", None)
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            dead.append(f"{pid} was killed by {name}" + (" (what the kernel's out-of-memory killer sends)" if -code == signal.SIGKILL else ""))
        elif code not in (None, 0):
            dead.append(f"{pid} exited with code {code}")
    return f"a worker process died ({'; '.join(dead) or 'ended abruptly'})"


@contextlib.contextmanager
def _sigint_ignored():
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def _dask_client(address, n_jobs, timeout=None):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--dask-scheduler needs dask.distributed; install it with: pip install 'mlcv[dask]'") from None
    cluster = None
    try:
        if address == "local":
            # Workers started while SIGINT is ignored keep ignoring it: a Ctrl-C in the
            # terminal then stops this process cleanly instead of every worker with a traceback.
            with _sigint_ignored():
                cluster = LocalCluster(
                    n_workers=max(1, n_jobs),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = Client(cluster)
        else:
            # mlcv reports a lost cluster in one line; distributed's own tracebacks would bury it.
            for name in list(logging.root.manager.loggerDict):
                if name == "distributed" or name.startswith("distributed."):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
            if "://" not in address or address.startswith("tcp://"):  # the CLI allows no other; the API may use inproc://
                cluster_mod.probe_scheduler(address, timeout)
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise MlcvError(f"cannot reach the Dask scheduler at {address} ({exc}); check the address or use --dask-scheduler local") from None
    try:
        if cluster is None:
            cluster_mod.check_workers(client, address, timeout)
        yield client
    finally:
        with contextlib.suppress(Exception):  # a dead scheduler cannot be told goodbye
            client.close(timeout=5)
        if cluster is not None:
            cluster.close()


class ClusterLost(MlcvError):
    """The Dask scheduler went away (or cancelled our work) in the middle of a run."""


def _execute_dask(client, jobs, plan, data, on_done, timeout=None):
    from dask.distributed import as_completed

    # One copy of the data per worker, not one per job (scattered keys hash the content).
    [data_f] = client.scatter([data], broadcast=True)
    [plan_f] = client.scatter([plan], broadcast=True)
    # Task keys are unique to this execution: a scheduler hands an existing key's result to
    # whoever submits that key again, so keys from a pid or a job id alone would let two
    # runs (two containers with the same pid) receive each other's accuracies.
    token = secrets.token_hex(16)
    futures = {
        client.submit(_run_on_dask, job, plan_f, data_f, token, key=f"mlcv-{job['id']}-{token}", pure=False): job
        for job in jobs
    }
    from concurrent.futures import CancelledError

    from distributed.comm import CommClosedError

    watch = cluster_mod.WorkerWatch(client, timeout or cluster_mod.DEFAULT_TIMEOUT)
    for fut in _completed(as_completed(futures), watch):
        job = futures[fut]
        try:
            answer = fut.result()
        except (CancelledError, CommClosedError, OSError, TimeoutError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterLost(f"lost the Dask cluster while job {job['id']} ran ({reason[:200]})") from None
        except ImportError as exc:  # a worker that joined after the check, without mlcv
            raise ClusterLost(f"a Dask worker cannot run job {job['id']} ({exc}); install mlcv where the workers run") from None
        if not isinstance(answer, dict) or answer.get("run") != token or answer.get("job") != job["id"]:
            found = (answer.get("run"), answer.get("job")) if isinstance(answer, dict) else type(answer).__name__
            raise MlcvError(
                f"the Dask cluster answered job {job['id']} with a result for another run or job ({found}); "
                "nothing from it was recorded. Resume on a cluster of your own or with --jobs"
            )
        on_done(job["id"], answer["rows"])


def _completed(ac, watch):
    """Futures of ``ac`` as they finish; a cluster left without workers for the watch's timeout
    raises ClusterLost instead of waiting forever."""
    while not ac.is_empty():
        ready = ac.next_batch(block=False)
        if ready:
            yield from ready
            continue
        gone = watch.gone_for()
        if gone is not None:
            raise ClusterLost(f"the Dask cluster has had no workers for {gone:.0f} s (--dask-timeout {watch.timeout:g})")
        time.sleep(0.05)


# -- the run --------------------------------------------------------------------------------


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
        data = path.read_bytes()
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
        return path.read_bytes()
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


def read_plan(run: RunDir):
    """(plan, config) from cv_plan.json, checked: its points must be the ones its own config plans."""
    path = run.file(PLAN_FILE)
    plan = run.read_json(PLAN_FILE)
    fix = "the run directory is damaged or was edited; start a new cv run (best.yaml and config.yaml hold the settings)"
    if not isinstance(plan, dict) or not isinstance(plan.get("config"), dict) or not isinstance(plan.get("points"), list):
        raise MlcvError(f"{path} is not an mlcv cv plan (expected an object with config and points); {fix}")
    random_n = plan.get("random")
    if random_n is not None and (type(random_n) is not int or not 1 <= random_n <= config_mod.MAX_GRID_POINTS):
        raise MlcvError(f"{path}: random is {random_n!r}, expected a whole number from 1 to {config_mod.MAX_GRID_POINTS} or null; {fix}")
    try:
        cfg = config_mod.from_dict(plan["config"])
        expected = grid_points(cfg.cv.grid, random_n, cfg.seed)
    except (MlcvError, TypeError, ValueError) as exc:
        raise MlcvError(f"{path}: the saved config is not valid ({exc}); {fix}") from None
    if not expected or json.dumps(plan["points"], sort_keys=True) != json.dumps(expected, sort_keys=True):
        raise MlcvError(f"{path}: its grid points are not the ones its config's cv.grid gives; {fix}")
    plan["points"] = expected  # values exactly as the grid parser makes them
    return plan, cfg


def _append_job(run: RunDir, job_id, rows):
    atomic.append_line(run.file(JOBS_FILE), json.dumps({"id": job_id, "rows": rows}))


def summarise(points, rows) -> list:
    """Per grid point: params, mean and std of the fold accuracies, sorted best first."""
    by_point = {}
    for r in rows:
        by_point.setdefault(r["point"], []).append(r)
    summary = []
    for i, point in enumerate(points):
        accs = [r["accuracy"] for r in sorted(by_point.get(i, []), key=lambda r: r["fold"])]
        if not accs:
            continue
        summary.append(
            {
                "point": i,
                "params": point,
                "mean": float(np.mean(accs)),
                "std": float(np.std(accs)),
                "folds": accs,
                "time_s": float(sum(r["time_s"] for r in by_point[i])),
            }
        )
    summary.sort(key=lambda s: (-s["mean"], s["std"], s["point"]))
    return summary


def cross_validate(
    cfg: Config | None = None,
    *,
    random_n=None,
    n_jobs=1,
    dask_scheduler=None,
    dask_timeout=None,
    resume_dir=None,
    refit=False,
    progress=None,
    command=None,
    accept_changes=False,
) -> dict:
    """Run (or resume) a cross-validation over cfg.cv.grid; write the run directory.

    A resumed run whose data or plan changed since it started is refused (InputsChanged)
    unless ``accept_changes``.
    """
    with contextlib.ExitStack() as held:  # the run's lock, from the moment the run is known until the end
        return _cross_validate(held, cfg, random_n=random_n, n_jobs=n_jobs, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout,
                               resume_dir=resume_dir, refit=refit, progress=progress, command=command,
                               accept_changes=accept_changes)


def _cross_validate(held, cfg, *, random_n, n_jobs, dask_scheduler, dask_timeout, resume_dir, refit, progress, command, accept_changes):
    from ...data.splits import split_dataset
    from ...models.build import knn_backend_note
    from ...runs.status import mark_run
    from ...system.progress import null_progress
    from ..inputs import data_dir_for, load_dataset, pin_data_location

    progress = progress or null_progress
    if resume_dir is not None:
        run = RunDir(resume_dir)
        held.enter_context(run.locked())  # the first hold removes a killed writer's temporary files
        if not run.file(PLAN_FILE).exists():
            raise UsageError(f"{run.path} is not an `mlcv cv` run directory (no {PLAN_FILE})")
        plan, cfg = read_plan(run)
    else:
        if not cfg.cv.grid:  # neither the config nor --grid names one: the model's usual grid
            cfg = config_mod.replace(cfg, {"cv.grid": config_mod.DEFAULT_GRIDS[cfg.model.type]})
        config_mod.check_grid_for_model(cfg.cv.grid, cfg.model.type)
        cfg = pin_data_location(cfg)
        points = grid_points(cfg.cv.grid, random_n, cfg.seed)
        plan = {"config": cfg.to_dict(), "points": points, "random": random_n}
        run = None

    t0 = time.perf_counter()
    ds = load_dataset(cfg)
    inputs = fingerprints.inputs(ds, plan["config"], plan)
    if run is not None:  # before any work, and before the run is touched
        fingerprints.check(run, inputs, accept=accept_changes)
    # The folds are the validation sets: no data.num_val split is carved (nor demanded).
    splits = split_dataset(config_mod.replace(cfg, {"data.num_val": 0}), ds)
    images, labels = splits.train_x, splits.train_y
    C = len(splits.classes)
    if cfg.cv.folds > len(labels):
        raise ConfigError(f"cv.folds: {cfg.cv.folds} folds need at least that many images; the training set has {len(labels)}")
    counts = np.bincount(labels, minlength=C)
    present = counts[counts > 0]
    if len(present) < 2:
        raise MlcvError("cross-validation needs at least two classes in the training images; found one")
    if present.max() < cfg.cv.folds:
        raise ConfigError(
            f"cv.folds: {cfg.cv.folds} folds but no class has that many images (the largest has {present.max()}); "
            f"use at most {present.max()} folds (5 or 10 is usual)"
        )
    if present.min() < cfg.cv.folds:
        warn = f"some classes have fewer images ({present.min()}) than folds ({cfg.cv.folds}); those folds miss the class"
    else:
        warn = None

    if cfg.model.type == "knn":
        smallest_fold_train = len(labels) - math.ceil(len(labels) / cfg.cv.folds)
        k_max = max(p.get("model.k", cfg.model.k) for p in plan["points"])
        if k_max > smallest_fold_train:
            raise ConfigError(
                f"model.k: {k_max} is larger than a fold's training set ({smallest_fold_train} images); "
                "lower the largest k or use fewer folds"
            )

    from ...data.feature_cache import encode_for_cv

    jobs = plan_jobs(cfg, plan["points"])
    from ...system import memory

    # A remote cluster's workers hold their jobs in their own machines' memory.
    workers = max(1, n_jobs) if dask_scheduler in (None, "local") else 0
    memory.check(memory.cv_parts(cfg, plan["points"], len(labels), cfg.cv.folds, images.shape[1:], C, workers, images.nbytes),
                 "this cross-validation")
    features, feature_events = encode_for_cv(cfg, plan["points"], images, data_dir_for(cfg) / "features", progress)
    if getattr(features, "fitted", None):  # learned extractors may come from the cache: the run's own, or refused
        inputs["features"] = fingerprints.of_fitted(features.fitted)
        if run is not None:
            fingerprints.check_features(run, inputs["features"], data_dir_for(cfg) / "features", accept=accept_changes)
    hint = (f"; the finished jobs are kept: resume with `mlcv cv --resume {resume_dir}` and a working --dask-scheduler, "
            "or --jobs N") if resume_dir is not None else ""
    with _executor(n_jobs, dask_scheduler, dask_timeout, hint) as execute:
        if run is None:
            run = RunDir.create(cfg.output.dir, f"{cfg.output.name or cfg.name}-cv")
            held.enter_context(run.locked())
            # meta.json (with the input fingerprints) first: a plan is never there without them.
            run.start_meta(command or command_line(), cfg.seed, kind="cv", model=cfg.model.type, dataset=ds.name, jobs=len(jobs),
                           inputs=inputs)
            run.write_text("config.yaml", config_mod.to_yaml(cfg))
            run.write_json(PLAN_FILE, plan)
        if resume_dir is not None:
            run.update_meta(status="running", resumed=command or command_line())
        finished, journal_warning = read_journal(run, jobs, len(plan["points"]))
        todo = [j for j in jobs if j["id"] not in finished]
        bar = progress(len(jobs), f"cv {cfg.model.type} ({len(plan['points'])} points x {cfg.cv.folds} folds)")
        bar.update(len(jobs) - len(todo))

        by_id = {j["id"]: j for j in jobs}

        def on_done(job_id, rows):
            problem = job_rows_problem(by_id[job_id], rows, len(plan["points"])) if job_id in by_id else "not a job of this plan"
            if problem:
                raise MlcvError(f"the result for job {job_id} does not fit the plan ({problem}); nothing from it was recorded")
            finished[job_id] = rows
            _append_job(run, job_id, rows)
            bar.update(1, job=job_id, acc=f"{max(r['accuracy'] for r in rows):.3f}" if rows else None)

        try:
            with sigterm_raises():
                execute(todo, plan, (features, labels, C), on_done)
        except KeyboardInterrupt as exc:
            mark_run(run, "interrupted")
            err = MlcvError(f"cross-validation stopped with {len(finished)} of {len(jobs)} jobs done; resume with: mlcv cv --resume {run.path}")
            err.exit_code = 143 if isinstance(exc, Terminated) else 130
            err.run_dir = str(run.path)
            raise err from None
        except ClusterLost as exc:
            mark_run(run, "failed", exc)
            raise ClusterLost(f"{exc}; {len(finished)} of {len(jobs)} jobs are done and kept. Resume with: "
                              f"mlcv cv --resume {run.path} (add --dask-scheduler ADDRESS for a cluster, or --jobs N)") from None
        except (ExecutorLost, MemoryError) as exc:
            reason = str(exc) if isinstance(exc, ExecutorLost) else "ran out of memory"
            mark_run(run, "interrupted", reason)
            err = MlcvError(f"{reason}; {len(finished)} of {len(jobs)} jobs are done and kept in {JOBS_FILE}; "
                            f"resume with: mlcv cv --resume {run.path}" + (" (with fewer --jobs)" if n_jobs > 1 else ""))
            err.run_dir = str(run.path)
            raise err from None
        except BaseException as exc:
            mark_run(run, "failed", exc)
            raise
        finally:
            bar.close()

    missing = [j["id"] for j in jobs if j["id"] not in finished]
    if missing:  # every executor reports every job or raises; this guards the summary
        raise MlcvError(f"{len(missing)} job(s) have no result ({', '.join(missing[:5])}); resume with: mlcv cv --resume {run.path}")
    rows = sorted((r for j in jobs for r in finished[j["id"]]), key=lambda r: (r["point"], r["fold"]))
    _write_results(run, plan["points"], rows)
    summary = summarise(plan["points"], rows)
    best = summary[0]
    best_cfg = config_mod.replace(cfg, best["params"])
    run.write_text("best.yaml", config_mod.to_yaml(best_cfg))
    result = {
        "run_dir": str(run.path),
        "model": cfg.model.type,
        "dataset": ds.name,
        "folds": cfg.cv.folds,
        "n_images": int(len(labels)),
        "grid": cfg.cv.grid,
        "random": plan.get("random"),
        "summary": summary,
        "best_params": best["params"],
        "best_mean": best["mean"],
        "best_std": best["std"],
        "jobs": len(jobs),
        "jobs_resumed": len(jobs) - len(todo),
        "time_s": round(time.perf_counter() - t0, 3),
        "warning": "; ".join(w for w in (warn, journal_warning, *grid_edge_warnings(cfg.cv.grid, best["params"], plan.get("random")))
                             if w) or None,
        "feature_cache": feature_events,
        "note": knn_backend_note(
            cfg.model.type == "knn" and any(p.get("model.metric", cfg.model.metric) == "l1" for p in plan["points"])
        ),
    }
    run.write_json("cv_summary.json", result)
    run.update_meta(status="done")
    if refit:
        result["refit"] = refit_best(run.path, progress=progress, dataset=ds, accept_changes=accept_changes)
    return result


def grid_edge_warnings(grid, best_params, random_n=None):
    """For each numeric key whose best value is the grid's smallest or largest: which way to extend it."""
    if random_n:
        return []
    notes = []
    for key, values in grid.items():
        if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        best, low = best_params.get(key), config_mod.KEYS[key]["low"]
        if best == max(values):
            notes.append(f"the best {key}={best:g} is the largest value tried: extend the grid above it")
        elif best == min(values) and not (low is not None and best <= low):
            notes.append(f"the best {key}={best:g} is the smallest value tried: extend the grid below it")
    return notes


def refit_best(run_dir, *, progress=None, dataset=None, accept_changes=False) -> dict:
    """Train a finished cv run's best setting on all its training images, in RUN/refit/.

    The refit is a training run of its own (config.yaml, checkpoints, model.npz), so an
    interrupted refit resumes from its checkpoint the next time this is called.
    """
    run = RunDir(run_dir)
    with run.locked():
        return _refit_best(run, progress, dataset, accept_changes)


def _refit_best(run, progress, dataset, accept_changes):
    from ...runs.checkpoints import CHECKPOINT
    from ...runs.status import mark_run
    from ..resume import resume
    from ..train import train

    plan, cfg = read_plan(run)
    summary = run.read_json("cv_summary.json")
    if (not isinstance(summary, dict) or summary.get("best_params") not in plan["points"]
            or type(summary.get("n_images")) is not int or summary["n_images"] < 2):
        raise MlcvError(
            f"{run.file('cv_summary.json')} does not fit the run's plan (best_params must be one of its grid points, "
            f"n_images a count); finish the cv again with `mlcv cv --resume {run.path}` after removing it"
        )
    refit_dir = run.file("refit")
    if refit_dir.is_dir() and RunDir(refit_dir).status == "done" and run.exists("refit_summary.json"):
        done = run.read_json("refit_summary.json")
        if (isinstance(done, dict) and all(type(done.get(k)) is int and done[k] >= 0 for k in ("n_train", "n_val"))
                and isinstance(done.get("run_dir"), str)
                and (done.get("test_accuracy") is None or (isinstance(done["test_accuracy"], (int, float))
                                                          and 0 <= done["test_accuracy"] <= 1))):
            return done
        raise MlcvError(f"{run.file('refit_summary.json')} is not what mlcv wrote (n_train, n_val, test_accuracy, run_dir); "
                        f"remove it and {refit_dir}, then run `mlcv cv --resume {run.path} --refit` to refit again")
    run.update_meta(refit="running")
    try:
        if (refit_dir / CHECKPOINT).exists():
            result = resume(refit_dir, progress=progress, accept_changes=accept_changes)
        else:
            if refit_dir.exists() and any(refit_dir.iterdir()):
                raise MlcvError(f"{refit_dir} holds an unfinished refit without a checkpoint; remove it and run `mlcv cv --resume {run.path} --refit`")
            best_cfg = config_mod.replace(cfg, summary["best_params"])
            # The same images the folds used (the split's permutation is seeded), now all for training.
            refit_cfg = config_mod.replace(best_cfg, {"data.num_train": int(summary["n_images"]), "data.num_val": 0})
            refit_dir.mkdir(exist_ok=True)
            result = train(refit_cfg, progress=progress, run=RunDir(refit_dir), dataset=dataset)
    except BaseException:
        mark_run(run, "done")  # the cross-validation itself finished
        try:
            run.update_meta(refit="interrupted" if RunDir(refit_dir).status == "interrupted" else "failed")
        except MlcvError:
            pass
        raise
    run.write_json("refit_summary.json", result)
    run.update_meta(refit="done")
    return result


def _write_results(run, points, rows):
    keys = sorted({k for p in points for k in p})
    run.write_csv(RESULTS_FILE, [{**points[r["point"]], **r} for r in rows], ["point", *keys, "fold", "accuracy", "time_s", "note"])


def parse_grid_option(items) -> dict:
    """--grid model.k=1,3,5 / --grid train.lr=logspace(-7,-5,5) -> {key: [values]}."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--grid expects KEY=V1,V2,... or KEY=logspace(a,b,n), found {item!r}")
        key, raw = item.split("=", 1)
        key, raw = key.strip(), raw.strip()
        # A range expression is expanded by check_grid_values; anything else is a comma list.
        if raw.endswith(")"):
            values = raw
        else:
            texts = [v.strip() for v in raw.strip("[]").split(",") if v.strip()]
            config_mod.check_grid_count(key, len(texts))  # refused before each value is parsed
            values = [config_mod.parse_scalar(v) for v in texts]
        grid[key] = config_mod.check_grid_values(key, values)
    return grid
