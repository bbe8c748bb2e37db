"""The repository the local tools run from (the stack, the soak, the Terraform helpers)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
