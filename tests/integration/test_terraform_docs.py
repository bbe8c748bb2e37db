"""terraform/README.md's inputs and outputs tables match the module (scripts/terraform_docs.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from scripts import terraform_docs
from tests.support.paths import REPO_ROOT

MODULE = REPO_ROOT / "terraform"


def test_readme_tables_are_up_to_date() -> None:
    assert terraform_docs.main(["--check"]) == 0, "run: python scripts/terraform_docs.py"


@pytest.fixture
def module_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "terraform"
    copy.mkdir()
    for path in [*MODULE.glob("*.tf"), MODULE / "README.md"]:
        shutil.copy(path, copy / path.name)
    return copy


def test_a_new_variable_makes_the_check_fail_until_regenerated(module_copy: Path) -> None:
    (module_copy / "extra.tf").write_text(
        'variable "brand_new" {\n  description = "Added <later>."\n  type = number\n}\n'
        'output "brand_new_out" {\n  description = "Out."\n  value = var.brand_new\n}\n'
    )
    assert terraform_docs.main(["--check", "--module", str(module_copy)]) == 1
    assert terraform_docs.main(["--module", str(module_copy)]) == 0
    readme = (module_copy / "README.md").read_text()
    assert "| `brand_new` | Added &lt;later&gt;. | `number` | n/a | yes |" in readme
    assert "| `brand_new_out` | Out. |" in readme
    assert terraform_docs.main(["--check", "--module", str(module_copy)]) == 0


def test_every_variable_and_output_is_listed_once() -> None:
    inputs, outputs = terraform_docs.render(MODULE).split("### Outputs")
    source = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    for kind, section in (("variable", inputs), ("output", outputs)):
        names = re.findall(rf'^{kind} "([a-z0-9_]+)"', source, flags=re.MULTILINE)
        assert names
        for name in names:
            assert section.count(f"| `{name}` |") == 1, name


def test_missing_markers_are_an_error(module_copy: Path) -> None:
    (module_copy / "README.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="BEGIN_TF_DOCS"):
        terraform_docs.main(["--check", "--module", str(module_copy)])
