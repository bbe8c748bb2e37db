"""Every property test in tests/ is reproducible: one Hypothesis profile, overridden by none.

The profile (tests/conftest.py) derives each test's examples from its source and reads or
writes no example database, so ``make test`` and CI draw the same examples on every machine.
A test that set ``derandomize`` or ``database`` itself would escape it; these tests fail then.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from tests.conftest import HYPOTHESIS_PROFILE
from tests.support.paths import REPO_ROOT

TESTS = REPO_ROOT / "tests"


def property_tests() -> Iterator[tuple[str, Any]]:
    for path in sorted(TESTS.rglob("test_*.py")):
        dotted = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        module = importlib.import_module(dotted)
        for name, value in vars(module).items():
            if getattr(value, "is_hypothesis_test", False):
                yield f"{path.stem}.{name}", value


def test_the_suite_profile_is_deterministic_and_has_no_example_database():
    profile = settings.get_profile(HYPOTHESIS_PROFILE)
    assert profile.derandomize is True
    assert profile.database is None
    assert profile.deadline is None


def test_the_suite_profile_is_loaded_unless_another_was_asked_for(request: pytest.FixtureRequest):
    asked = request.config.getoption("hypothesis_profile", default=None)
    assert settings.get_current_profile_name() == (asked or HYPOTHESIS_PROFILE)


def test_no_property_test_overrides_the_profile():
    loaded = settings.default
    found = dict(property_tests())
    assert len(found) >= 15, sorted(found)  # the suite's property tests were all found
    for name, test in found.items():
        own = test._hypothesis_internal_use_settings
        assert own.derandomize == loaded.derandomize, name
        assert (own.database is None) == (loaded.database is None), name
