"""The Terraform module and the Python code agree on names.

Terraform sets, on each function, exactly the environment variables that function's settings
read (``ttma_relay.settings.INGEST_ENV`` / ``ARCHIVE_ENV`` / ``RECONCILE_ENV``), secrets only as
Secret Manager references, and deploys the entry points ``main.py`` defines. The module's own
``terraform test`` (terraform/tests/security.tftest.hcl) checks that the deployed functions use
those maps; this file checks the maps against the Python side, so neither side can drift.

``GOOGLE_CLOUD_PROJECT`` is part of the comparison, not special-cased: Cloud Functions (2nd gen)
on python312 does not set it, so Terraform sets it explicitly on every function.

No Terraform or HCL parser is needed for the names: ``terraform/functions.tf`` keeps the
contract in plain ``locals`` maps with one ``NAME = value`` per line, which a small brace-aware
scanner reads. What is evaluated (the zip's excludes, the environment values) is evaluated by
Terraform itself (``terraform console``, offline through tf-offline's stub providers), and the
zip's file list comes from archive-walk, a replay of the ``archive_file`` directory walk, both
through scripts/deploy_artifact_proof.py; under ``CI=true`` the tests needing them fail rather
than skip when they are missing.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from types import ModuleType

import pytest

from tests.support.paths import REPO_ROOT
from ttma_relay import settings
from ttma_relay.functions import BY_NAME, FUNCTIONS

ROOT = REPO_ROOT
TERRAFORM = ROOT / "terraform"
FUNCTIONS_TF = TERRAFORM / "functions.tf"
TFTEST = TERRAFORM / "tests" / "security.tftest.hcl"

# Which settings set each deployed function reads (the table: ttma_relay/functions.py).
SETTINGS_BY_FUNCTION = {spec.name: spec.env for spec in FUNCTIONS}
# Decorator (functions_framework.<kind>) each entry point must carry in main.py.
SIGNATURE_BY_FUNCTION = {
    spec.name: {"http": "http", "cloudevent": "cloud_event"}[spec.signature_type]
    for spec in FUNCTIONS
}
# Top-level directories that are deployed (everything else must be excluded from the zip).
RUNTIME_PACKAGES = {"verify", "handlers", "ttma_relay"}
# Inside them, what no function imports and the zip leaves out (source_excluded_dirs).
NOT_DEPLOYED = ("ttma_relay/cli",)
# Environment variables a function may carry that the app's settings do not read: the
# functions-framework's own server tuning (gunicorn threads).
SERVER_ENV = {"THREADS"}


def _strip_comments(text: str) -> str:
    return "\n".join(re.sub(r"\s+#.*$|^\s*#.*$", "", line) for line in text.splitlines())


def _block(text: str, name: str) -> str:
    """Body of the first ``name = {`` (or ``name {``) block, braces balanced."""
    match = re.search(rf"^\s*{re.escape(name)}\s*=?\s*\{{\s*$", text, re.MULTILINE)
    if match is None:
        raise AssertionError(f"block {name!r} not found")
    depth, start = 1, match.end()
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index]
    raise AssertionError(f"block {name!r} is not closed")


def _top_level_entries(body: str) -> dict[str, str]:
    """``key = value`` pairs at the top level of a block body (nested blocks skipped)."""
    entries: dict[str, str] = {}
    depth = 0
    for line in body.splitlines():
        if depth == 0:
            match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", line)
            if match:
                entries[match.group(1)] = match.group(2)
        depth += line.count("{") - line.count("}")
    return entries


@pytest.fixture(scope="module")
def functions_tf() -> str:
    return _strip_comments(FUNCTIONS_TF.read_text())


@pytest.fixture(scope="module")
def terraform_functions(functions_tf: str) -> dict[str, dict[str, str]]:
    """function key -> {"env": local name, "secret_env": local name, ...}."""
    body = _block(functions_tf, "functions")
    result = {}
    for key in _top_level_entries(body):
        result[key] = _top_level_entries(_block(body, key))
    return result


def _local_keys(functions_tf: str, reference: str) -> set[str]:
    """Keys of ``local.x``, or of ``merge(local.x, { NAME = ... })``."""
    match = re.fullmatch(r"local\.([a-z_]+)", reference) or re.fullmatch(
        r"merge\(local\.([a-z_]+),\s*\{(.*)\}\s*\)", reference
    )
    assert match, f"expected a reference to a local map, got {reference!r}"
    keys = set(_top_level_entries(_block(functions_tf, match.group(1))))
    if match.lastindex == 2:
        keys |= set(re.findall(r"([A-Z][A-Z0-9_]*)\s*=", match.group(2)))
    return keys


def test_terraform_deploys_exactly_the_functions_of_the_table(terraform_functions):
    assert set(terraform_functions) == set(BY_NAME)


def test_each_terraform_function_has_the_table_s_ingress_and_timeout(terraform_functions):
    for name, spec in BY_NAME.items():
        deployed = terraform_functions[name]
        expected_ingress = "ALLOW_ALL" if spec.public else "ALLOW_INTERNAL_ONLY"
        assert deployed["ingress"].strip('"') == expected_ingress, name
        timeout = deployed["timeout"]
        if spec.trigger == "push":  # the ack deadline is the push request's timeout
            assert timeout == f"local.subscriber_functions.{name}.ack_deadline_seconds", name
        else:
            assert timeout == str(spec.timeout_seconds), name


def test_each_function_serves_the_table_s_concurrency_with_as_many_threads(
    functions_tf, terraform_functions
):
    """Cloud Run's concurrency and gunicorn's THREADS are the table's, so an instance runs as
    many requests at once as it is sent (functions-framework's default is 4 x CPUs)."""
    entries = _top_level_entries(_block(functions_tf, "concurrency"))
    concurrency = {key: int(value) for key, value in entries.items()}
    assert concurrency == {spec.name: spec.concurrency for spec in FUNCTIONS}
    for name, deployed in terraform_functions.items():
        assert deployed["concurrency"] == f"local.concurrency.{name}", name
        assert f"THREADS = tostring(local.concurrency.{name})" in deployed["env"], name


def test_push_subscriptions_have_the_table_s_ack_deadlines():
    pubsub = _strip_comments((TERRAFORM / "pubsub.tf").read_text())
    body = _block(pubsub, "subscriber_functions")
    deadlines = {
        key: int(re.search(r"ack_deadline_seconds\s*=\s*(\d+)", value).group(1))
        for key, value in _top_level_entries(body).items()
    }
    assert deadlines == {
        spec.name: spec.ack_deadline_seconds for spec in FUNCTIONS if spec.trigger == "push"
    }
    for spec in FUNCTIONS:
        if spec.trigger == "push":
            assert spec.ack_deadline_seconds == spec.timeout_seconds, spec.name


@pytest.mark.parametrize("function", sorted(SETTINGS_BY_FUNCTION))
def test_function_environment_equals_the_settings_it_reads(
    functions_tf, terraform_functions, function
):
    spec = terraform_functions[function]
    plain = _local_keys(functions_tf, spec["env"]) - SERVER_ENV
    secret = _local_keys(functions_tf, spec["secret_env"])

    assert plain | secret == SETTINGS_BY_FUNCTION[function], (
        f"{function}: Terraform sets {sorted(plain | secret)}, "
        f"the code reads {sorted(SETTINGS_BY_FUNCTION[function])}"
    )
    assert not plain & settings.SECRET_ENV, f"{function}: secrets set as plain variables"
    assert secret == SETTINGS_BY_FUNCTION[function] & settings.SECRET_ENV


def test_every_setting_is_set_by_terraform_somewhere(functions_tf, terraform_functions):
    names: set[str] = set()
    for spec in terraform_functions.values():
        names |= _local_keys(functions_tf, spec["env"]) | _local_keys(
            functions_tf, spec["secret_env"]
        )
    assert names - SERVER_ENV == settings.ENV_NAMES


def test_secret_references_point_at_secret_manager(functions_tf, terraform_functions):
    for spec in terraform_functions.values():
        body = _block(functions_tf, spec["secret_env"].removeprefix("local."))
        for name, value in _top_level_entries(body).items():
            assert re.search(r"secret\s*=\s*google_secret_manager_secret\.\w+\.secret_id", value), (
                name
            )
            assert re.search(r"version\s*=\s*var\.\w+", value), name


def test_terraform_test_expectations_match_settings():
    text = TFTEST.read_text()

    def expected(name: str) -> set[str]:
        match = re.search(rf"^\s*{name}\s*=\s*\[(.*?)\]", text, re.MULTILINE)
        assert match, f"{name} missing from {TFTEST.name}"
        return set(re.findall(r'"([A-Z0-9_]+)"', match.group(1)))

    assert expected("expected_ingest_env") == settings.INGEST_ENV
    assert expected("expected_archive_env") == settings.ARCHIVE_ENV
    assert expected("expected_reconcile_env") == settings.RECONCILE_ENV
    assert expected("expected_secret_env") == settings.SECRET_ENV


def _entry_points_in_main() -> dict[str, str]:
    """Functions in main.py decorated with @functions_framework.http / .cloud_event."""
    main = ROOT / "main.py"
    assert main.exists(), "main.py (the functions' entry points) is missing"
    found = {}
    for node in ast.parse(main.read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Attribute) and target.attr in {"http", "cloud_event"}:
                found[node.name] = target.attr
            elif isinstance(target, ast.Name) and target.id in {"http", "cloud_event"}:
                found[node.name] = target.id
    return found


def test_entry_points_exist_in_main_py(functions_tf, terraform_functions):
    entry_points = {
        key: value.strip('"')
        for key, value in _top_level_entries(_block(functions_tf, "entry_points")).items()
    }
    assert set(entry_points) == set(terraform_functions)
    defined = _entry_points_in_main()
    for function, entry_point in entry_points.items():
        assert entry_point in defined, f"main.py has no decorated function {entry_point!r}"
        assert defined[entry_point] == SIGNATURE_BY_FUNCTION[function], (
            f"{entry_point} must be @functions_framework.{SIGNATURE_BY_FUNCTION[function]}"
        )


# ---- what Terraform evaluates, and the zip archive_file builds -------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def proof() -> ModuleType:
    """scripts/deploy_artifact_proof.py: Terraform facts, archive-walk, the zip's file rules."""
    path = ROOT / "scripts" / "deploy_artifact_proof.py"
    spec = importlib.util.spec_from_file_location("deploy_artifact_proof", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def terraform_facts(proof):
    """The module's locals as ``terraform console`` evaluates them (the proof's inputs)."""
    try:
        return proof.terraform_facts()
    except proof.ProofError as error:
        _unavailable(f"terraform console unavailable: {error}")


@pytest.fixture(scope="module")
def archive_walk(proof):
    """archive-walk (../shared/tools/archive-walk), built into ~/.cache/ttma-relay if missing."""
    try:
        return proof.archive_walk_binary()
    except (proof.ProofError, OSError) as error:
        _unavailable(f"archive-walk cannot be built: {error}")


@pytest.fixture(scope="module")
def zip_files(proof, terraform_facts, archive_walk) -> list[str]:
    assert terraform_facts.source_dir == ROOT
    return proof.archive_walk(ROOT, terraform_facts.excludes, archive_walk)


def test_function_zip_holds_exactly_the_runtime_code(proof, zip_files):
    """main.py, requirements.txt and the runtime packages' .py files, nothing else (Terraform's
    own excludes, matched by the provider's walk): no .git, .venv, tests, terraform, caches."""
    deployed = [
        path.relative_to(ROOT)
        for package in sorted(RUNTIME_PACKAGES)
        for path in (ROOT / package).rglob("*.py")
    ]
    expected = {"main.py", "requirements.txt"} | {
        path.as_posix()
        for path in deployed
        if not any(part == "__pycache__" or part.startswith(".") for part in path.parts)
        and not path.as_posix().startswith(tuple(f"{d}/" for d in NOT_DEPLOYED))
    }
    assert set(zip_files) == expected, (
        f"extra: {sorted(set(zip_files) - expected)}, missing: {sorted(expected - set(zip_files))}"
        " (a new top-level directory must be added to source_excluded_dirs in "
        "terraform/functions.tf, or to RUNTIME_PACKAGES here if the functions import it)"
    )
    for name in zip_files:
        top = name.split("/", 1)[0]
        assert top in RUNTIME_PACKAGES | {"main.py", "requirements.txt"}, name
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert not (ROOT / name).is_symlink(), f"{name}: archive-walk does not model symlinks"
    proof.check_files(zip_files)  # the proof's own rule agrees


def test_no_exclude_matches_the_walk_root(proof, terraform_facts, archive_walk):
    """The provider matches the root "." too: ".*" would skip everything ("archive has not been
    created as it would be empty"). The replay reproduces that, and Terraform's list avoids it."""
    with pytest.raises(proof.ProofError, match="would be empty"):
        proof.archive_walk(ROOT, [".*"], archive_walk)
    assert ".*" not in terraform_facts.excludes


def test_zip_file_mode_is_fixed(terraform_facts):
    assert terraform_facts.file_mode == "0644"


@pytest.mark.parametrize("function", sorted(SETTINGS_BY_FUNCTION))
def test_evaluated_environment_is_what_the_code_reads(terraform_facts, function):
    """The names Terraform actually sets (evaluated, defaults: no previous webhook secret)."""
    facts = terraform_facts.functions[function]
    names = (set(facts.env) - SERVER_ENV) | set(facts.secret_env_names)
    optional = {settings.ENV_WEBHOOK_SECRET_PREVIOUS}
    assert names == SETTINGS_BY_FUNCTION[function] - optional
    assert set(facts.secret_env_names) == (SETTINGS_BY_FUNCTION[function] & settings.SECRET_ENV) - (
        optional
    )
    assert all(isinstance(value, str) and value for value in facts.env.values()), facts.env


def test_no_primitive_roles_in_terraform():
    for path in sorted(TERRAFORM.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        text = _strip_comments(path.read_text())
        assert not re.search(r"roles/(owner|editor|viewer)\b", text), path


def test_main_py_defines_exactly_the_table_s_entry_points():
    assert _entry_points_in_main() == SIGNATURE_BY_FUNCTION
