"""npe2 discovers the plugin from a wheel install and from an editable install."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import PACKAGE_MANIFEST, ROOT

_DISCOVER = """
import sys
from pathlib import Path
{setup}
from npe2 import PluginManifest
import maskscope
here = Path({site!r}).resolve()
found = [
    r for r in PluginManifest.discover()
    if r.manifest is not None and r.manifest.name == "maskscope"
    and Path(str(r.distribution.locate_file(""))).resolve() == here
]
print(maskscope.__file__)
print(sorted(c.id for c in found[0].manifest.contributions.commands) if found else "not found")
"""


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _build_flags(*modules: str) -> list[str]:
    """Build without isolation (offline, fast) when the backend is installed here."""
    return ["--no-build-isolation"] if _has(*modules) else []


def _discover(setup: str, site: Path, cwd: Path) -> list[str]:
    """Import maskscope and discover the plugin provided by the distribution in ``site``."""
    code = _DISCOVER.format(setup=setup, site=str(site))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=cwd, capture_output=True, text=True, env=env
    )
    return out.stdout.strip().splitlines()


def _pip_install(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)


def test_wheel_ships_the_manifest_and_npe2_finds_it(tmp_path):
    _pip_install("wheel", "--no-deps", *_build_flags("hatchling"), ".", "-w", str(tmp_path))
    (wheel,) = tmp_path.glob("maskscope-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert names.count("maskscope/napari.yaml") == 1
        assert zf.read("maskscope/napari.yaml") == PACKAGE_MANIFEST.read_bytes()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "maskscope = maskscope:napari.yaml" in zf.read(entry_points).decode()
    target = tmp_path / "site"
    _pip_install("install", "--no-deps", "--target", str(target), str(wheel))
    lines = _discover(f"sys.path.insert(0, {str(target)!r})", target, tmp_path)
    assert lines[0] == str(target / "maskscope" / "__init__.py")
    assert "maskscope.explain_widget" in lines[1]


def test_editable_install_is_discovered(tmp_path):
    prefix = tmp_path / "prefix"
    flags = _build_flags("hatchling", "editables")
    # --ignore-installed: never touch the maskscope already installed in this environment
    _pip_install(
        "install", "--no-deps", "--ignore-installed", *flags, "-e", ".", "--prefix", str(prefix)
    )
    (site,) = prefix.glob("lib/python*/site-packages")
    lines = _discover(f"import site; site.addsitedir({str(site)!r})", site, tmp_path)
    assert lines[0] == str(ROOT / "src" / "maskscope" / "__init__.py")
    assert "maskscope.explain_widget" in lines[1]
