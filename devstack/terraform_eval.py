"""Ask Terraform itself what the module evaluates to: ``terraform console`` on a copy, offline.

No state and no cloud: ``terraform init -backend=false`` on a copy of ``terraform/*.tf``, then
one console expression. On a machine without registry access (this one, and CI) the stub
providers of tf-offline answer ``init``. Used by the deploy proof (the functions' environment
and the zip's rules) and by the consumer-subscription generator
(``devstack/consumers/terraform.py``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.paths import ROOT

TERRAFORM_DIR = ROOT / "terraform"
TF_OFFLINE = ROOT.parent / "shared" / "tools" / "tf-offline" / "tf-offline"


class TerraformEvalError(RuntimeError):
    """Terraform is missing, or init / console failed; the message has Terraform's output."""


def _run(command: Sequence[str], what: str, **options: Any) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **options)  # noqa: S603  argv built in this module: terraform / tf-offline, fixed args
    if result.returncode != 0:
        raise TerraformEvalError(
            f"{what} failed ({result.returncode}):\n{result.stderr or result.stdout}"
        )
    return result.stdout


def terraform_env(workdir: Path) -> dict[str, str]:
    """Environment for ``terraform`` in ``workdir``: tf-offline's provider mirror when present."""
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    env["TF_DATA_DIR"] = str(workdir / ".terraform")
    if TF_OFFLINE.exists():  # no registry here: the stub providers answer init and console
        out = _run([str(TF_OFFLINE), "env"], "tf-offline env").strip()
        name, _, value = out.removeprefix("export ").partition("=")
        env[name] = value
    return env


def evaluate(
    expression: str, variables: Mapping[str, Any], *, module_dir: Path = TERRAFORM_DIR
) -> Any:
    """The JSON value of ``expression`` (any HCL expression) in the module, given ``variables``
    (``-var NAME=VALUE``: strings as they are, anything else as HCL/JSON)."""
    if shutil.which("terraform") is None:
        raise TerraformEvalError("terraform not found on PATH")
    wrapped = f"base64encode(jsonencode({expression}))"  # no HCL escaping reaches the output
    with tempfile.TemporaryDirectory(prefix="ttma-tf-") as tmp:
        work = Path(tmp)
        for path in module_dir.glob("*.tf"):
            shutil.copy2(path, work / path.name)
        lock = module_dir / ".terraform.lock.hcl"
        if lock.exists() and not TF_OFFLINE.exists():  # the stub's hashes would not match it
            shutil.copy2(lock, work / lock.name)
        env = terraform_env(work)
        _run(["terraform", "init", "-backend=false", "-input=false", "-no-color"],
             "terraform init", cwd=work, env=env)  # fmt: skip
        args = [
            f"-var={name}={value if isinstance(value, str) else json.dumps(value)}"
            for name, value in variables.items()
        ]
        out = _run(["terraform", "console", *args], "terraform console", cwd=work, env=env,
                   input=wrapped.replace("\n", " ") + "\n")  # fmt: skip
    return json.loads(base64.b64decode(json.loads(out.strip().splitlines()[-1])))
