"""The local stack serves each function of the table with settings that function reads (and
every one it requires), as Terraform does: nothing the code would ignore, nothing missing."""

from __future__ import annotations

import pytest

from devstack.stack.config import PORT_OFFSETS, StackConfig
from devstack.stack.services import EMULATOR_HOST_VARS, StackSecrets, function_settings_env
from ttma_relay.functions import FUNCTIONS
from ttma_relay.settings import SettingsError


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_the_stack_sets_only_what_the_function_reads_and_it_starts(spec):
    config = StackConfig(ports=dict.fromkeys(PORT_OFFSETS, 1))
    env = function_settings_env(config, spec.name, StackSecrets("w" * 40, "mbn_live_k", "h" * 40))
    assert set(env) - set(EMULATOR_HOST_VARS) <= spec.env, sorted(set(env) - spec.env)
    try:
        spec.settings.from_env(env)  # what main.py validates at start-up
    except SettingsError as error:
        pytest.fail(f"{spec.name} would not start on the stack's settings: {error}")
