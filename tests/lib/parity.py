"""The parity fixtures: official implementations' weights, inputs and outputs (tests/fixtures/parity/README.md)."""

from __future__ import annotations

from pathlib import Path

import torch

PARITY_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def load_fixture(name: str) -> dict:
    path = PARITY_DIR / f"{name}.pt"
    assert path.is_file(), f"parity fixture {path} is missing (tests/fixtures/parity/ is part of the repo)"
    return torch.load(path, weights_only=True)
