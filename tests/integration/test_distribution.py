"""Distributed command jobs on one machine: ``distribution`` x ``resources.instance_count`` becomes that many
processes with the variables Azure sets (reference §2.4), one MLflow run, one log; a real gloo all-reduce where
torch is installed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.jobs import JobYard, write
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

PRINT_ENV = ("python -c \"import json, os; print('ENV ' + json.dumps({k: v for k, v in os.environ.items() "
             "if k in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'NODE_RANK', 'TF_CONFIG', "
             "'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'MLFLOW_RUN_ID')}))\"")


@pytest.fixture
def yard(server: ServerProcess, tmp_path: Path) -> JobYard:
    return JobYard(server, tmp_path)


def _envs(yard: JobYard, name: str) -> list[dict[str, str]]:
    return [json.loads(m) for m in re.findall(r"^ENV (\{.*\})$", yard.log(name), re.M)]


def test_pytorch_2_nodes_x_2_processes_see_their_ranks(yard: JobYard) -> None:
    job = write(yard.root / "ddp.yml", """\
        command: @CMD@
        environment: @ENV@
        distribution: {type: pytorch, process_count_per_instance: 2}
        resources: {instance_count: 2}
        """, CMD=json.dumps(PRINT_ENV))
    done = yard.completed(job)
    envs = sorted(_envs(yard, done["name"]), key=lambda e: int(e["RANK"]))
    assert [(e["RANK"], e["LOCAL_RANK"], e["NODE_RANK"]) for e in envs] == \
        [("0", "0", "0"), ("1", "1", "0"), ("2", "0", "1"), ("3", "1", "1")]
    assert {(e["WORLD_SIZE"], e["MASTER_ADDR"], e["MASTER_PORT"], e["MLFLOW_RUN_ID"]) for e in envs} == \
        {("4", "127.0.0.1", envs[0]["MASTER_PORT"], done["name"])}  # one master, one MLflow run


def test_tensorflow_and_mpi_variables_and_a_failing_rank_fails_the_job(yard: JobYard) -> None:
    tf = write(yard.root / "tf.yml", """\
        command: @CMD@
        environment: @ENV@
        distribution: {type: tensorflow, worker_count: 2, parameter_server_count: 1}
        """, CMD=json.dumps(PRINT_ENV))
    configs = [json.loads(e["TF_CONFIG"]) for e in _envs(yard, yard.completed(tf)["name"])]
    assert sorted((c["task"]["type"], c["task"]["index"]) for c in configs) == [("ps", 0), ("worker", 0),
                                                                                  ("worker", 1)]
    assert len({json.dumps(c["cluster"]) for c in configs}) == 1 and len(configs[0]["cluster"]["worker"]) == 2

    mpi = write(yard.root / "mpi.yml", """\
        command: @CMD@
        environment: @ENV@
        distribution: {type: mpi, process_count_per_instance: 3}
        """, CMD=json.dumps(PRINT_ENV + ' && test "$OMPI_COMM_WORLD_RANK" != 2'))
    failed = yard.run(mpi)
    assert failed["status"] == "Failed" and "exited with code 1" in failed["error"]
    assert sorted(e["OMPI_COMM_WORLD_RANK"] for e in _envs(yard, failed["name"])) == ["0", "1", "2"]
    assert "stopping the others" in yard.log(failed["name"])


ALL_REDUCE = """\
import os
import torch
import torch.distributed as dist

dist.init_process_group("gloo", init_method="env://")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"RANK {dist.get_rank()} OF {dist.get_world_size()} SUM {t.item():.0f}", flush=True)
dist.destroy_process_group()
"""


def test_a_real_gloo_all_reduce_across_2_nodes_x_2_processes(yard: JobYard) -> None:
    pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0 takes the CPU build)")
    write(yard.root / "src" / "allreduce.py", ALL_REDUCE)
    job = write(yard.root / "allreduce.yml", """\
        code: src
        command: python allreduce.py
        environment: @ENV@
        distribution: {type: pytorch, process_count_per_instance: 2}
        resources: {instance_count: 2}
        """)
    done = yard.completed(job)
    # four processes share one log, and torch's C++ warnings may land inside a line: match the results anywhere
    found = sorted(set(re.findall(r"RANK (\d) OF (\d) SUM (\d+)", yard.log(done["name"]))))
    assert found == [(str(r), "4", "10") for r in range(4)], yard.log(done["name"])  # 1 + 2 + 3 + 4 on every rank
