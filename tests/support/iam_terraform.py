"""Every grant in the Terraform, and every use of an identity the Terraform itself makes,
read from Terraform's own evaluation of the module.

``start_terraform_state()`` copies ``terraform/*.tf`` into a scratch root that calls the module
twice (``defaults``: a plain deployment; ``all_options``: ``terraform/tests/all-options.tfvars``,
every optional part on), and runs ``terraform test -verbose -json`` with one ``apply`` run under
the mock providers of ``terraform/tests/mocks`` (offline: tf-offline's stub providers, as
``devstack/terraform_eval.py`` does for ``terraform console``). The JSON of that run holds the
state: every resource with its evaluated arguments (``for_each`` keys, conditions, members).
Computed attributes (emails, ids, URIs) are mock strings, consistent within the run, so
references are followed by value: a subscription's ``topic`` is the ``id`` of a topic resource.

``Deployment`` turns one module instance's state into ``iam.Grant``s (each ``*_iam_member``;
any other IAM resource type fails loudly) and ``iam.Need``s of the identities that are not
functions (what a push subscription, the scheduler job, a build, a CMEK bucket or a secret
environment variable needs), and resolves what a function's settings name (its topic, bucket,
database) to the resource the grants are on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.terraform_eval import TerraformEvalError, terraform_env
from tests.support.iam import Grant, Need, Resource
from tests.support.paths import REPO_ROOT
from ttma_relay.functions import BY_NAME

TERRAFORM = REPO_ROOT / "terraform"
COMMAND_TIMEOUT_SECONDS = 600
DEFAULTS_PROJECT = "ttma-test-project"
ROOT_MODULE = """\
module "defaults" {{
  source     = "./module"
  project_id = "{project}"
  region     = "europe-west1"
}}

module "all_options" {{
  source = "./module"
{all_options}
}}
"""
TEST_FILE = """\
mock_provider "google" {
  source = "./tests/mocks"
}
mock_provider "time" {}
mock_provider "archive" {
  source = "./tests/mocks"
}
run "grants" {
  command = apply
}
"""
# The Cloud Storage agent, as google.tfmock.hcl gives it to the module's own tests.
STORAGE_AGENT_OVERRIDE = """
override_data {{
  target          = module.{module}.data.google_storage_project_service_account.this
  override_during = plan
  values = {{
    member = "serviceAccount:service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
  }}
}}
"""
# A Firestore grant is conditioned on one database (iam.tf): nothing else is understood.
FIRESTORE_CONDITION = re.compile(r'^resource\.name == "(projects/[^/"]+/databases/[^/"]+)"$')
RUN_SERVICE_GRANTS = {
    "google_cloud_run_service_iam_member",
    "google_cloud_run_v2_service_iam_member",
    "google_cloudfunctions2_function_iam_member",
}


class TerraformRun:
    """``terraform init`` + ``terraform test`` in a background thread; ``states()`` waits,
    ``close()`` waits and cleans up."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ttma-iam-tf-"))
        self._states: dict[str, list[dict[str, Any]]] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="terraform-iam", daemon=True)

    def start(self) -> TerraformRun:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._states = self._evaluate()
        except BaseException as error:
            self._error = error

    def _evaluate(self) -> dict[str, list[dict[str, Any]]]:
        work = self._dir
        (work / "module").mkdir()
        for path in TERRAFORM.glob("*.tf"):
            shutil.copy2(path, work / "module" / path.name)
        shutil.copy2(TERRAFORM / "versions.tf", work / "versions.tf")
        shutil.copytree(TERRAFORM / "tests" / "mocks", work / "tests" / "mocks")
        options = (TERRAFORM / "tests" / "all-options.tfvars").read_text()
        (work / "main.tf").write_text(
            ROOT_MODULE.format(
                project=DEFAULTS_PROJECT,
                all_options="\n".join(f"  {line}" for line in options.splitlines()),
            )
        )
        (work / "tests" / "grants.tftest.hcl").write_text(
            TEST_FILE
            + "".join(STORAGE_AGENT_OVERRIDE.format(module=m) for m in ("defaults", "all_options"))
        )
        env = terraform_env(work)
        for command in (
            ["terraform", "init", "-backend=false", "-input=false", "-no-color"],
            ["terraform", "test", "-verbose", "-json", "-no-color"],
        ):
            result = subprocess.run(  # noqa: S603  terraform with fixed arguments in a scratch dir
                command,
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=COMMAND_TIMEOUT_SECONDS,
            )
            if result.returncode != 0:
                raise TerraformEvalError(
                    f"{' '.join(command[:2])} failed ({result.returncode}):\n"
                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
                )
        for line in result.stdout.splitlines():
            message = json.loads(line)
            if message.get("type") == "test_state":
                modules = message["test_state"]["root_module"]["child_modules"]
                return {m["address"].removeprefix("module."): m["resources"] for m in modules}
        raise TerraformEvalError("terraform test printed no state")

    def states(self, timeout: float = 600.0) -> dict[str, list[dict[str, Any]]]:
        """Each module instance's resources (``defaults``, ``all_options``)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TerraformEvalError(f"terraform test still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._states is not None
        return self._states

    def close(self) -> None:
        """Wait for Terraform (each command is bounded) and remove the scratch directory."""
        self._thread.join(COMMAND_TIMEOUT_SECONDS * 2)
        shutil.rmtree(self._dir, ignore_errors=True)


def start_terraform_state() -> TerraformRun:
    return TerraformRun().start()


def _last(value: str) -> str:
    return value.rsplit("/", 1)[-1]


@dataclass
class Deployment:
    """One module instance, read from its state."""

    name: str
    resources: list[dict[str, Any]]
    project: str = ""
    project_number: str = ""
    identities: dict[str, str] = field(default_factory=dict)  # any SA attribute value → key
    _by_value: dict[str, dict[str, str]] = field(default_factory=dict)  # kind → value → address

    def __post_init__(self) -> None:
        kinds = {
            "google_pubsub_topic": ("topic", ("id", "name")),
            "google_pubsub_subscription": ("subscription", ("id", "name")),
            "google_storage_bucket": ("bucket", ("id", "name", "url")),
            "google_secret_manager_secret": ("secret", ("id", "name", "secret_id")),
            "google_cloudfunctions2_function": ("function", ("id", "name")),
            "google_artifact_registry_repository": (
                "ar_repository",
                ("id", "name", "repository_id"),
            ),
        }
        for resource in self.resources:
            values, kind = resource["values"], resource["type"]
            if kind == "google_service_account":
                for attribute in ("email", "member", "name", "id", "unique_id"):
                    if values.get(attribute):
                        self.identities[values[attribute]] = resource["index"]
                self.project = values["project"]
            elif kind == "google_bigquery_table":
                self._index("bq_table", f"{values['dataset_id']}.{values['table_id']}", resource)
            if kind in kinds:
                label, attributes = kinds[kind]
                for attribute in attributes:
                    if values.get(attribute):
                        self._index(label, values[attribute], resource)
                        self._index(label, _last(values[attribute]), resource)
            if kind == "google_cloudfunctions2_function":
                self._index("function_uri", values["service_config"][0]["uri"], resource)
        if not self.project_number:
            self.project_number = str(self._data("google_project")["number"])

    def _index(self, kind: str, value: str, resource: dict[str, Any]) -> None:
        self._by_value.setdefault(kind, {}).setdefault(value, resource["address"])

    def _data(self, kind: str) -> dict[str, Any]:
        for resource in self.resources:
            if resource["type"] == kind and resource["mode"] == "data":
                return resource["values"]
        raise AssertionError(f"{self.name}: no data.{kind}")

    def of_type(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.resources if r["type"] == kind and r["mode"] == "managed")

    def lookup(self, kind: str, value: str) -> Resource:
        """The resource a reference names: a resource of this module (by its address), or
        ``("external", value)``."""
        found = self._by_value.get(kind, {})
        address = found.get(value) or found.get(_last(value))
        return (kind, address) if address else ("external", value)

    # ---------------------------------------------------------------------- identities
    @property
    def pubsub_agent(self) -> str:
        # Google's name for a project's Pub/Sub service agent (PUSH_AUTH, DEAD_LETTER pages)
        return f"serviceAccount:service-{self.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

    @property
    def storage_agent(self) -> str:
        # Google's name for a project's Cloud Storage service agent (STORAGE_CMEK page)
        number = self.project_number
        return f"serviceAccount:service-{number}@gs-project-accounts.iam.gserviceaccount.com"

    def identity(self, member: str) -> str:
        """A member as a key: a module service account's key, ``pubsub_agent``,
        ``storage_agent``, ``allUsers``, or the member itself."""
        if member in self.identities:
            return self.identities[member]
        return {self.pubsub_agent: "pubsub_agent", self.storage_agent: "storage_agent"}.get(
            member, member
        )

    # ---------------------------------------------------------------------- functions
    def functions(self) -> dict[str, dict[str, Any]]:
        return {r["index"]: r for r in self.of_type("google_cloudfunctions2_function")}

    def function_identity(self, function: str) -> str:
        email = self.functions()[function]["values"]["service_config"][0]["service_account_email"]
        return self.identity(email)

    def function_env(self, function: str) -> dict[str, str]:
        return dict(
            self.functions()[function]["values"]["service_config"][0]["environment_variables"]
        )

    def resolve(self, function: str, kind: str) -> Resource:
        """The resource of ``kind`` that ``function``'s deployed settings name."""
        env = self.function_env(function)
        if kind == "firestore_database":
            return (
                kind,
                f"projects/{env['GOOGLE_CLOUD_PROJECT']}/databases/{env['FIRESTORE_DATABASE']}",
            )
        if kind == "topic":
            return self.lookup("topic", env["CALL_EVENTS_TOPIC"])
        if kind == "bucket":
            return self.lookup("bucket", env["ARCHIVE_BUCKET"])
        raise AssertionError(f"no setting names a {kind}")

    # ---------------------------------------------------------------------- grants
    def grants(self) -> list[Grant]:
        grants: list[Grant] = []
        for resource in self.resources:
            kind, values = resource["type"], resource["values"]
            if resource["mode"] != "managed" or not re.search(
                r"_iam_(member|binding|policy)$", kind
            ):
                continue
            if not kind.endswith("_iam_member"):
                raise AssertionError(
                    f"{resource['address']}: only *_iam_member grants are "
                    "understood (a binding or policy is authoritative)"
                )
            conditions = values.get("condition") or []
            target = self._grant_target(resource, conditions)
            grants.append(
                Grant(
                    self.identity(values["member"]),
                    values["role"],
                    target,
                    f"{self.name}: {resource['address']}",
                )
            )
        return grants

    def _grant_target(self, resource: dict[str, Any], conditions: list[dict[str, Any]]) -> Resource:
        kind, values = resource["type"], resource["values"]
        if kind == "google_project_iam_member":
            if not conditions:
                return ("project", values["project"])
            match = FIRESTORE_CONDITION.match(conditions[0]["expression"])
            if len(conditions) != 1 or match is None or values["role"] != "roles/datastore.user":
                raise AssertionError(
                    f"{resource['address']}: condition not understood: {conditions}"
                )
            return ("firestore_database", match.group(1))
        if conditions:
            raise AssertionError(f"{resource['address']}: conditions are not understood here")
        if kind == "google_pubsub_topic_iam_member":
            return self.lookup("topic", values["topic"])
        if kind == "google_pubsub_subscription_iam_member":
            return self.lookup("subscription", values["subscription"])
        if kind == "google_storage_bucket_iam_member":
            return self.lookup("bucket", values["bucket"])
        if kind == "google_secret_manager_secret_iam_member":
            return self.lookup("secret", values["secret_id"])
        if kind == "google_service_account_iam_member":
            return ("service_account", self.identity(values["service_account_id"]))
        if kind in RUN_SERVICE_GRANTS:
            return self.lookup(
                "function", values.get("service") or values.get("name") or values["cloud_function"]
            )
        if kind == "google_artifact_registry_repository_iam_member":
            return self.lookup("ar_repository", values["repository"])
        if kind == "google_kms_crypto_key_iam_member":
            return ("kms_key", values["crypto_key_id"])
        if kind == "google_bigquery_table_iam_member":
            return self.lookup("bq_table", f"{values['dataset_id']}.{values['table_id']}")
        raise AssertionError(f"{resource['address']}: grant type {kind} is not understood")

    # ---------------------------------------------------------------------- uses by Terraform
    def terraform_needs(self) -> list[Need]:
        """What the identities need for the uses the Terraform itself makes of them."""
        needs: list[Need] = []
        agent = "pubsub_agent"
        for key, function in self.functions().items():
            address, values = function["address"], function["values"]
            service = ("function", address)
            identity = self.function_identity(key)
            for secret in values["service_config"][0]["secret_environment_variables"]:
                needs.append(
                    Need(
                        identity,
                        "runtime: secret environment variable",
                        self.lookup("secret", secret["secret"]),
                        f"{address}: {secret['key']}, read at start-up",
                    )
                )
            build = values["build_config"][0]
            builder = self.identity(build["service_account"])
            because = f"{address}: build_config.service_account"
            needs += [
                Need(builder, "build: write build logs", ("project", self.project), because),
                Need(
                    builder,
                    "build: push the function image",
                    self.lookup("ar_repository", build["docker_repository"]),
                    because,
                ),
                Need(
                    builder,
                    "build: read the source zip",
                    self.lookup("bucket", build["source"][0]["storage_source"][0]["bucket"]),
                    because,
                ),
            ]
            if BY_NAME[key].public:  # the function table: the vendor's webhook, no credentials
                needs.append(
                    Need(
                        "allUsers",
                        "public: invoke the Cloud Run service",
                        service,
                        f"ttma_relay/functions.py: {key} is public",
                    )
                )
        for subscription in self.of_type("google_pubsub_subscription"):
            address, values = subscription["address"], subscription["values"]
            for push in values.get("push_config") or []:
                for token in push.get("oidc_token") or []:
                    pusher = self.identity(token["service_account_email"])
                    needs.append(
                        Need(
                            agent,
                            "push: OIDC token of the push identity",
                            ("service_account", pusher),
                            f"{address}: oidc_token",
                        )
                    )
                    target = self.lookup("function_uri", push["push_endpoint"])
                    if target[0] != "external":
                        needs.append(
                            Need(
                                pusher,
                                "push: invoke the Cloud Run service",
                                ("function", target[1]),
                                f"{address}: push_endpoint",
                            )
                        )
            for policy in values.get("dead_letter_policy") or []:
                because = f"{address}: dead_letter_policy"
                needs += [
                    Need(
                        agent,
                        "dead letter: forward to the dead-letter topic",
                        self.lookup("topic", policy["dead_letter_topic"]),
                        because,
                    ),
                    Need(
                        agent,
                        "dead letter: acknowledge on the source subscription",
                        ("subscription", address),
                        because,
                    ),
                ]
            for config in values.get("bigquery_config") or []:
                table = ".".join(config["table"].split(".")[-2:])
                needs.append(
                    Need(
                        agent,
                        "bigquery subscription: write rows",
                        self.lookup("bq_table", table),
                        f"{address}: bigquery_config",
                    )
                )
        for job in self.of_type("google_cloud_scheduler_job"):
            for target in job["values"].get("http_target") or []:
                for token in target.get("oidc_token") or []:
                    function = self.lookup("function_uri", target["uri"])
                    needs.append(
                        Need(
                            self.identity(token["service_account_email"]),
                            "scheduler: invoke the Cloud Run service",
                            ("function", function[1]),
                            f"{job['address']}: oidc_token",
                        )
                    )
        for bucket in self.of_type("google_storage_bucket"):
            for encryption in bucket["values"].get("encryption") or []:
                needs.append(
                    Need(
                        "storage_agent",
                        "cmek: encrypt and decrypt archive objects",
                        ("kms_key", encryption["default_kms_key_name"]),
                        f"{bucket['address']}: encryption",
                    )
                )
        return needs
