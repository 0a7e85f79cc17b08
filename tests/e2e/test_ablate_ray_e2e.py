"""``yamlforge ablate --engine ray`` on a local two-CPU Ray cluster the module starts on 127.0.0.1: the same study as
the local engine (8.4.190, yolov8n and SHSA after layer 6, 1 epoch at 64 px) gives the same table, and a killed
driver's Tune experiment is restored by the rerun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from study_tools import kill_when, shsa_checkout, written
from typer.testing import CliRunner

from yamlforge.cli import app

EPOCHS = 1
SAME = ("variant", "status", "metric", "map50", "difference", "epochs", "best_epoch", "parameters", "gflops")


@pytest.fixture(scope="module")
def checkout(checkout_factory, tmp_path_factory):
    """8.4.190 with SHSA applied, and the synthetic dataset."""
    return shsa_checkout(checkout_factory("ultralytics", "8.4.190"), tmp_path_factory.mktemp("shapes"), imgsz=64)


@pytest.fixture(scope="module")
def cluster():
    """A two-CPU Ray cluster on 127.0.0.1 for the module, its address; its workers inherit this environment."""
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def study_command(root: Path, data: Path, out: Path, *, epochs: int) -> list[str]:
    return [str(a) for a in ("ablate", "yolov8n", "--repo", root, "--data", data, "--module", "SHSA", "--at", 6,
                             "--epochs", epochs, "--imgsz", 64, "--batch", 8, "--workers", 0, "--seeds", 0, "-o", out,
                             "--format", "json")]


def yamlforge(*args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process, as a Ray driver is (the test process owns the cluster)."""
    return subprocess.run([sys.executable, "-m", "yamlforge", *args], capture_output=True, text=True, check=False)


def test_the_ray_engine_gives_the_local_engines_table(checkout, cluster, tmp_path):
    local = CliRunner().invoke(app, study_command(*checkout, tmp_path / "local", epochs=EPOCHS))
    assert local.exit_code == 0, local.output
    on_ray = yamlforge(*study_command(*checkout, tmp_path / "ray", epochs=EPOCHS), "--engine", "ray",
                       "--cpus-per-trial", "1", "--address", cluster)
    assert on_ray.returncode == 0, on_ray.stderr
    local_rows, ray_rows = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert [row["status"] for row in ray_rows] == ["done", "done"]
    assert [{k: row[k] for k in SAME} for row in ray_rows] == [{k: row[k] for k in SAME} for row in local_rows]
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["models", "plan.json", "plots", "ray", "trials"]


def test_a_killed_driver_is_restored_and_finishes(checkout, cluster, tmp_path):
    """SIGKILL to the driver once a trial saved a checkpoint: Ray ends the driver's trials; the rerun restores the
    Tune experiment (no second one) and finishes every trial."""
    out, epochs = tmp_path / "study", 2
    command = [*study_command(*checkout, out, epochs=epochs), "--engine", "ray", "--address", cluster]
    driver = subprocess.Popen([sys.executable, "-m", "yamlforge", *command], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    kill_when(driver, lambda: any(written(path) for path in out.glob("trials/*/train/weights/last.pt")), session=False)
    assert not (out / "ray" / "run-1" / "finished").exists()
    rerun = yamlforge(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert "restore  ray/run-1" in rerun.stderr and not (out / "ray" / "run-2").exists()
    rows = json.loads(rerun.stdout)
    assert [(row["variant"], row["status"], row["epochs"]) for row in rows] == [
        ("base", "done", [epochs]), ("SHSA-at6", "done", [epochs])]


def test_an_unreachable_address_is_one_line_and_trains_nothing(checkout, tmp_path):
    result = yamlforge(*study_command(*checkout, tmp_path / "study", epochs=1), "--engine", "ray", "--address",
                       "127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:9") and not result.stdout
    assert not (tmp_path / "study").exists()


def test_an_unknown_engine_is_one_line(checkout, tmp_path):
    result = CliRunner().invoke(app, [*study_command(*checkout, tmp_path / "study", epochs=1), "--engine", "slurm"])
    assert result.exit_code == 2 and "error: --engine slurm is not one of local, ray" in result.output
    assert not (tmp_path / "study").exists()
