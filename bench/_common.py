"""Helpers shared by the benchmark scripts in this folder (not a package: each script puts this folder on
``sys.path`` and imports ``_common``).

- every measurement runs in a fresh Python process (``run_worker``), so its peak memory is its own and no
  import, cache or allocator state leaks from one measurement into the next;
- peak memory is the process's resident-set high-water mark (Linux ``VmHWM``, the same quantity as
  ``getrusage(RUSAGE_SELF).ru_maxrss``); on Linux it is reset between phases of one worker by writing ``5`` to
  ``/proc/self/clear_refs``, so a phase's peak is that phase's, not the maximum of everything before it;
- ``machine_info`` and ``command_info`` go into every JSON report, so a number always says where it came from.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
MIRROR_ENV = "CONVREC_DATA_MIRROR"
WORKER_FLAG = "--_worker"
RESULT_PREFIX = "BENCH_RESULT "

MEMORY_METHOD = (
    "peak resident set size (RSS) of a fresh Python process per measurement: Linux VmHWM from /proc/self/status "
    "(= getrusage(RUSAGE_SELF).ru_maxrss), reset before each measured phase via /proc/self/clear_refs; "
    "'peak_rss_mib' is the whole process at its peak (interpreter, imports and data included), "
    "'peak_delta_mib' is that peak minus the RSS just before the phase started. MiB = 2**20 bytes. "
    "tracemalloc is not used: it sees only Python-heap allocations and slows the timed code down."
)


# ---------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def ru_maxrss_mib() -> float:
    """getrusage's peak RSS: kilobytes on Linux, bytes on macOS."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 2**20 if sys.platform == "darwin" else value / 1024


def peak_rss_mib() -> float:
    """This process's RSS high-water mark since it started or since the last ``reset_peak()``."""
    kib = _status_kib("VmHWM")
    return kib / 1024 if kib is not None else ru_maxrss_mib()


def current_rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else ru_maxrss_mib()


_PROCESS_PEAK_MIB = 0.0  # resetting the kernel's high-water mark also resets ru_maxrss: remember it here


def process_peak_mib() -> float:
    """The whole process's peak RSS so far, across every phase reset."""
    return max(_PROCESS_PEAK_MIB, peak_rss_mib())


def reset_peak() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux); False where that is not possible."""
    global _PROCESS_PEAK_MIB
    _PROCESS_PEAK_MIB = max(_PROCESS_PEAK_MIB, peak_rss_mib())
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Phase:
    """Time and peak memory of one phase of a worker: ``with Phase() as p: ...`` then ``p.to_json()``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.rss_before = 0.0
        self.peak = 0.0
        self.resettable = False

    def __enter__(self) -> Phase:
        self.resettable = reset_peak()
        self.rss_before = current_rss_mib()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started
        self.peak = peak_rss_mib()

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "rss_before_mib": round(self.rss_before, 1),
            "peak_rss_mib": round(self.peak, 1),
            "peak_delta_mib": round(max(self.peak - self.rss_before, 0.0), 1),
            "peak_is_phase_only": self.resettable,
        }


# ---------------------------------------------------------------- workers


def run_worker(script: Path, task: dict[str, Any], timeout: float = 3600.0) -> dict[str, Any]:
    """Run ``script --_worker TASK_JSON`` in a fresh interpreter and return the dict it prints."""
    env = dict(os.environ)
    env.setdefault("TQDM_DISABLE", "1")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), WORKER_FLAG, json.dumps(task)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=str(PROJECT_ROOT),
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_wall_seconds"] = time.perf_counter() - started
            return result
    tail = (proc.stderr or proc.stdout)[-3000:]
    raise RuntimeError(f"benchmark worker {task} failed (exit {proc.returncode}):\n{tail}")


def worker_main(worker: Callable[[dict[str, Any]], dict[str, Any]], argv: Sequence[str]) -> int:
    """Entry point of the worker mode: run one task, print its result as one JSON line."""
    task = json.loads(argv[1])
    result = worker(task)
    result.setdefault("process_peak_rss_mib", round(process_peak_mib(), 1))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def is_worker_call(argv: Sequence[str]) -> bool:
    return len(argv) >= 2 and argv[0] == WORKER_FLAG


# ---------------------------------------------------------------- provenance


def find_mirror(explicit: Path | None) -> Path:
    """``--mirror``, else ``$CONVREC_DATA_MIRROR``, else ``../shared/data`` beside the project."""
    candidates = [explicit] if explicit is not None else []
    if os.environ.get(MIRROR_ENV):
        candidates.append(Path(os.environ[MIRROR_ENV]))
    candidates.append(PROJECT_ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if candidate is not None and (candidate / "MANIFEST.tsv").is_file():
            return candidate.resolve()
        if explicit is not None:
            break
    raise SystemExit(
        f"no data mirror: pass --mirror DIR or set {MIRROR_ENV} (tried {', '.join(str(c) for c in candidates)})"
    )


def optional_mirror(mirror: Path | None, data_dir: Path | None) -> Path | None:
    """:func:`find_mirror`, but optional with a ``--data-dir`` and no ``--mirror`` (the dataset may already be
    converted there)."""
    try:
        return find_mirror(mirror)
    except SystemExit:
        if data_dir is None or mirror is not None:
            raise
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _memory_total_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def _git(*args: str) -> str | None:
    """Read-only git queries (the commit the numbers were measured at)."""
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _blas() -> list[dict[str, Any]]:
    try:
        import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "num_threads", "threading_layer")
    return [{k: pool.get(k) for k in keys if k in pool} for pool in threadpool_info()]


def machine_info() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=PROJECT_ROOT,
                                   capture_output=True, timeout=10).returncode == 1
    return {
        "timestamp_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_total_gib": _memory_total_gib(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {p: _version(p) for p in ("convrec", "numpy", "scipy", "torch", "pyarrow",
                                                "sentence-transformers")},
        "blas": _blas(),
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                       if k in os.environ},
        "git_commit": commit,
        "git_tracked_changes": dirty,
    }


def finish_machine_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` (taken when the run started) plus the project state when it ended: the source may change
    during a long run, and a report should say so."""
    end = machine_info()
    info["git_commit_at_end"] = end["git_commit"]
    info["git_tracked_changes_at_end"] = end["git_tracked_changes"]
    info["finished_utc"] = end["timestamp_utc"]
    return info


def command_info(script: Path, argv: Sequence[str] | None) -> dict[str, Any]:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        shown = script.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = script
    return {"argv": args, "command_line": shlex.join(["python", str(shown), *args]), "cwd": str(Path.cwd())}


# ---------------------------------------------------------------- summaries and tables


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Median, p90 (the value at the 90th percent place, no interpolation) and max of per-turn timings."""
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[min(int(0.9 * len(ordered)), len(ordered) - 1)],
            "max": ordered[-1]}


def rounded(obj: Any, digits: int = 4) -> Any:
    """Floats rounded for a readable JSON file (4 significant decimals is far below timing noise)."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on stdout (wide when stdout is not a terminal); plain aligned text without rich."""
    cells = [[str(c) for c in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(col), *(len(r[i]) for r in cells)) if cells else len(col) for i, col in enumerate(columns)]
        print(title)
        print("  ".join(col.rjust(w) for col, w in zip(columns, widths, strict=True)))
        for row in cells:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        return
    table = Table(title=title)
    for index, col in enumerate(columns):
        table.add_column(col, justify="left" if index == 0 else "right")
    for row in cells:
        table.add_row(*row)
    console = Console() if sys.stdout.isatty() else Console(width=220)
    console.print(table)


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_report(path: Path, report: dict[str, Any]) -> None:
    """The JSON report, written atomically (a killed run leaves the previous report intact)."""
    from convrec.io import write_json

    write_json(path, report)
    print(f"wrote {path}", file=sys.stderr)
