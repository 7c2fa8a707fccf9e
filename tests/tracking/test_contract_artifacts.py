"""Run artifacts through the real MLflow client, proxied by the tracking server (``mlflow-artifacts:/``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

import mlflow
import mlflow.artifacts
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

BIG = 50 * 1024 * 1024


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_log_list_and_download_artifacts(mlflow_env: MlflowClient, uid: str, tmp_path: Path) -> None:
    client = mlflow_env
    report = tmp_path / "report.txt"
    report.write_text("accuracy: 0.93\n")
    data = tmp_path / "data"
    (data / "images" / "cats").mkdir(parents=True)
    (data / "labels.csv").write_text("id,label\n1,cat\n")
    (data / "images" / "cats" / "1.bin").write_bytes(bytes(range(256)))
    (data / "images" / "readme.md").write_text("# images\n")

    experiment_id = client.create_experiment(f"artifacts-{uid}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_artifact(str(report))
        mlflow.log_artifact(str(report), artifact_path="reports/daily")
        mlflow.log_artifacts(str(data), artifact_path="data")
        mlflow.log_text("hello", "notes/hello.txt")
        mlflow.log_dict({"a": 1, "b": [1, 2]}, "config.json")
    run_id = run.info.run_id

    root = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in root] == [
        ("config.json", False), ("data", True), ("notes", True), ("report.txt", False), ("reports", True)]
    assert next(f for f in root if f.path == "report.txt").file_size == len("accuracy: 0.93\n")
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run_id, "data")] == [
        ("data/images", True), ("data/labels.csv", False)]
    assert [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, "data/images/cats")] == [
        ("data/images/cats/1.bin", False, 256)]
    assert [f.path for f in client.list_artifacts(run_id, "reports/daily")] == ["reports/daily/report.txt"]

    whole = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all")))
    assert _tree(whole) == {
        "config.json": json.dumps({"a": 1, "b": [1, 2]}, indent=2).encode(),
        "data/images/cats/1.bin": bytes(range(256)),
        "data/images/readme.md": b"# images\n",
        "data/labels.csv": b"id,label\n1,cat\n",
        "notes/hello.txt": b"hello",
        "report.txt": b"accuracy: 0.93\n",
        "reports/daily/report.txt": b"accuracy: 0.93\n",
    }
    sub = Path(client.download_artifacts(run_id, "data/images", str(tmp_path / "sub")))
    assert sub.name == "images"
    assert _tree(sub) == {"cats/1.bin": bytes(range(256)), "readme.md": b"# images\n"}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/hello.txt") == "hello"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"a": 1, "b": [1, 2]}


def test_missing_artifact_listing_is_empty(mlflow_env: MlflowClient, uid: str) -> None:
    run_id = mlflow_env.create_run(mlflow_env.create_experiment(f"empty-{uid}")).info.run_id
    assert mlflow_env.list_artifacts(run_id) == []
    assert mlflow_env.list_artifacts(run_id, "nothing/here") == []


def test_big_artifact_round_trip(mlflow_env: MlflowClient, uid: str, tmp_path: Path) -> None:
    big = tmp_path / "weights.bin"
    chunk = hashlib.sha256(uid.encode()).digest() * (1024 * 1024 // 32)  # 1 MiB, not all zeros
    with big.open("wb") as out:
        for i in range(BIG // len(chunk)):
            out.write(i.to_bytes(4, "big") + chunk[4:])
    digest = hashlib.sha256(big.read_bytes()).hexdigest()

    experiment_id = mlflow_env.create_experiment(f"big-{uid}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_artifact(str(big), artifact_path="checkpoints")

    [listed] = mlflow_env.list_artifacts(run.info.run_id, "checkpoints")
    assert (listed.path, listed.file_size) == ("checkpoints/weights.bin", BIG)
    back = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="checkpoints/weights.bin",
                                                    dst_path=str(tmp_path / "back")))
    assert back.stat().st_size == BIG
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
