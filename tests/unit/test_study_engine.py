"""The engines' checks and the local engine's one-trial-per-device dispatch (no training)."""

from __future__ import annotations

import os
import sys

import pytest

from yamlforge.errors import YamlforgeError
from yamlforge.study.engine import Engine, check_engine, on_devices


@pytest.mark.parametrize(("engine", "said"), [
    (Engine("slurm"), "--engine slurm is not one of local, ray"),
    (Engine("ray", cpus_per_trial=0), "--cpus-per-trial must be above 0"),
    (Engine("local", gpus_per_trial=-1), "--cpus-per-trial must be above 0 and --gpus-per-trial at least 0"),
    (Engine("ray", devices=("0", "1")), "--devices is the local engine's"),
    (Engine("local", address="auto"), "--address is the Ray engine's"),
], ids=["unknown", "no-cpus", "negative-gpus", "devices-on-ray", "address-on-local"])
def test_a_bad_engine_is_one_line(engine, said):
    with pytest.raises(YamlforgeError, match=said):
        check_engine(engine)


def test_ray_not_installed_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what importlib sees when ray is not installed
    with pytest.raises(YamlforgeError) as raised:
        check_engine(Engine("ray"))
    assert "not installed" in str(raised.value) and raised.value.hint == "pip install 'yamlforge[ray]'"


def test_each_trial_runs_once_in_a_process_that_sees_one_device():
    seen = []

    def train(counter, trial, step, runs):
        seen.append((counter, trial, runs("CUDA_VISIBLE_DEVICES")))

    todo = [("[1/3]", "a", "train"), ("[2/3]", "b", "train"), ("[3/3]", "c", "resume")]
    on_devices(todo, ("0", "1"), train, work=os.getenv)
    assert sorted(trial for _, trial, _ in seen) == ["a", "b", "c"]
    assert all(counter.endswith(f"(device {device})") and device in ("0", "1") for counter, _, device in seen)
