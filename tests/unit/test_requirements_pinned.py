"""Every dependency the project names is pinned to one exact version, in one place."""

from __future__ import annotations

import re

from tests.support.paths import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==([0-9][A-Za-z0-9.+!-]*)$")


def requirements(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (REPO_ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line == "-r requirements.txt":
            continue
        match = PIN.fullmatch(line)
        assert match, f"{name}: {line!r} is not pinned to one exact version (name==version)"
        package = match.group(1).lower().replace("_", "-")
        assert package not in pins, f"{name}: {package} is named twice"
        pins[package] = match.group(3)
    return pins


def test_runtime_and_dev_requirements_are_exact_pins_each_named_once():
    runtime, dev = requirements("requirements.txt"), requirements("requirements-dev.txt")
    assert {"functions-framework", "google-cloud-firestore", "google-cloud-pubsub"} <= set(runtime)
    assert {"pytest", "pip-audit", "ruff"} <= set(dev)
    assert not set(runtime) & set(dev), "a runtime pin restated in requirements-dev.txt"
    assert (REPO_ROOT / "requirements-dev.txt").read_text().splitlines().count(
        "-r requirements.txt"
    ) == 1  # the dev tools install on top of exactly the runtime pins
