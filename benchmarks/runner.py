"""Processes of a benchmark run: one per configuration, results kept in ``results.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import HERE, ROOT, STUBS


class Runner:
    """Starts one process per configuration and keeps every result in results.json.

    Parameters
    ----------
    args : argparse.Namespace
        Needs ``device``, ``threads`` and ``timeout`` (seconds per process).
    out : pathlib.Path
        Folder of ``results.json``.
    """

    def __init__(self, args, out: Path) -> None:
        self.args = args
        self.out = out
        self.results: dict = {
            "meta": {},
            "overhead": [],
            "side": [],
            "n_scaling": [],
            "size": [],
            "batch": [],
            "snapshot": [],
            "early": [],
            "errors": [],
        }

    def env(self, stubs: bool = False) -> dict:
        """The child's environment: ``src/`` (and the stubs) first on ``PYTHONPATH``."""
        env = dict(os.environ)
        paths = [str(ROOT / "src")] + ([str(STUBS)] if stubs else [])
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("LOGURU_LEVEL", "WARNING")
        env["OMP_NUM_THREADS"] = str(self.args.threads)
        return env

    def child(
        self,
        kind: str,
        cfg: dict,
        *,
        python: str | None = None,
        stubs: bool = False,
        timeout: float | None = None,
    ) -> dict | None:
        """Run ``parts.py KIND CFG`` in a fresh process; its result, or None (error kept)."""
        cfg = {"device": self.args.device, "threads": self.args.threads, **cfg}
        label = f"{kind} {json.dumps(cfg, sort_keys=True)}"
        print(f"  {label[:150]}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [python or sys.executable, str(HERE / "parts.py"), kind, json.dumps(cfg)],
                capture_output=True,
                text=True,
                env=self.env(stubs),
                timeout=timeout or self.args.timeout,
            )
        except subprocess.TimeoutExpired:
            self.error(kind, cfg, f"timed out after {timeout or self.args.timeout:.0f} s")
            return None
        if proc.returncode != 0:
            tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-3:]
            self.error(kind, cfg, " / ".join(tail) or f"exit code {proc.returncode}")
            return None
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["process_s"] = time.perf_counter() - t0
        return res

    def keep(self, key: str, res: dict | None) -> None:
        """Append a child's result (when there is one) to ``results[key]`` and save."""
        if res:
            self.results.setdefault(key, []).append(res)
            self.save()

    def error(self, kind: str, cfg: dict, message: str) -> None:
        """Print and keep a configuration that did not run."""
        print(f"    ERROR: {message}", flush=True)
        self.results["errors"].append({"kind": kind, "cfg": cfg, "error": message})
        self.save()

    def save(self) -> None:
        """Write ``results.json``."""
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))


def git_state() -> str:
    """The checkout measured: commit, and whether src/ has uncommitted changes (read-only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def load_average() -> float:
    """The 1-minute load average (nan where the system has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Sleep while the 1-minute load is above ``max_load`` (at most ``max_wait`` seconds)."""
    waited = 0.0
    while load_average() > max_load and waited < max_wait:
        print(f"load {load_average():.2f} > {max_load}: waiting 60 s", flush=True)
        time.sleep(60)
        waited += 60
    return load_average()
