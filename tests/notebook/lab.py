"""A throw-away JupyterLab server for the browser test: tmp dirs, random token, clean exit."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import maskscope

#: Where ``import maskscope`` comes from, so that the server's kernels import the same code.
SRC = Path(maskscope.__file__).resolve().parents[1]

#: Cells off-screen are not rendered with JupyterLab's default windowing.
OVERRIDES = {
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension:notification": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}


@dataclass
class Lab:
    """A running server."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, path: str, method: str = "GET") -> dict:
        """Call the REST API with the token."""
        req = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else {}

    def page_url(self, notebook: str) -> str:
        """URL opening ``notebook`` (relative to the root) in JupyterLab."""
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyterlab(root: Path, tmp: Path, timeout: float = 90.0) -> Iterator[Lab]:
    """Start JupyterLab on 127.0.0.1 serving ``root``; stop it (and its kernels) afterwards.

    Config, runtime, data, settings and workspace dirs all live in ``tmp``.
    """
    dirs = {name: tmp / name for name in ("config", "runtime", "data", "settings", "ws", "app")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (dirs["app"] / "overrides.json").write_text(json.dumps(OVERRIDES))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(tmp / "ipython"),
        PYTHONPATH=os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p),
    )
    log = tmp / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.allow_root=True",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['ws']}",
        f"--LabApp.app_settings_dir={dirs['app']}",
        # should this process be killed before it can stop the server, the server stops
        # itself: idle kernels are culled, then an idle server exits
        "--MappingKernelManager.cull_idle_timeout=300",
        "--MappingKernelManager.cull_interval=60",
        "--ServerApp.shutdown_no_activity_timeout=120",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, proc, log)
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
            try:
                lab.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if time.monotonic() - t0 > timeout:
                    tail = log.read_text()[-3000:]
                    raise TimeoutError(f"JupyterLab did not start:\n{tail}") from exc
                time.sleep(0.3)
        yield lab
    finally:
        try:
            lab.api("/api/shutdown", method="POST")
            proc.wait(timeout=15)
        except Exception:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
