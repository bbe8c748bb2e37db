"""``pip install .`` installs the CLI: ``ttma_relay`` and ``verify``, nothing with a generic name.

The wheel is built the way pip builds it for a user (with build isolation: setuptools from the
index), then imported from outside the repository with the site machinery off, so neither the
editable install nor the dev venv's repository path can stand in for what the wheel holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(  # noqa: S603  sys.executable -m pip wheel on this repository
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (built,) = out.glob("ttma_relay-*.whl")
    return built


def test_the_wheel_holds_only_the_cli_packages(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ttma_relay", "verify"}
    assert "ttma_relay/cli/main.py" in names and "verify/signature.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "ttma-relay = ttma_relay.cli:main" in archive.read(entry_points).decode()


def test_the_installed_cli_imports_from_the_wheel_alone(wheel, tmp_path):
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    third_party = sysconfig.get_paths()["purelib"]  # click, httpx, google-cloud-*: not ours
    code = (
        "import importlib.util, ttma_relay.cli, verify\n"
        f"assert ttma_relay.cli.__file__.startswith({str(unpacked)!r}), ttma_relay.cli.__file__\n"
        "missing = [m for m in ('main', 'handlers', 'devstack', 'ttma_sandbox')\n"
        "           if importlib.util.find_spec(m) is None]\n"
        "print(','.join(missing))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{unpacked}{os.pathsep}{third_party}"}
    result = subprocess.run(  # noqa: S603  sys.executable on the test's own code string
        [sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "main,handlers,devstack,ttma_sandbox"
