"""Distributed steps: ``distribution`` (pytorch, mpi, tensorflow) x ``resources.instance_count``.

Azure starts ``process_count_per_instance`` processes on each of ``instance_count`` nodes and sets the variables
a framework's launcher would (reference §2.4). On local slots mlyard emulates the nodes on the machine that runs
the step, as the reference's offline rule says: every "node" is ``127.0.0.1``, ports are free loopback ports. On a
Ray compute each instance runs on a Ray node of its own (``ray_instances.py``), with the nodes' addresses and ports
free there, through the same launcher (one per instance). The step's command
becomes ``python -m mlyard.jobs.distribution PLAN -- COMMAND``: this launcher starts one shell per process with
its variables, in the step's process group (so cancel and timeouts kill them all), and exits with the first
non-zero exit code after stopping the others, or 0 when all succeeded. Every process logs to the step's log and
reports to the step's one MLflow run (``MLFLOW_RUN_ID`` is the same for all).

* ``pytorch``: ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``NODE_RANK``, ``RANK``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE`` (``torch.distributed.init_process_group(init_method="env://")`` works unchanged).
* ``mpi``: Open MPI's ``OMPI_COMM_WORLD_RANK``, ``_SIZE``, ``_LOCAL_RANK``, ``_LOCAL_SIZE``, ``_NODE_RANK``; the
  processes are started by mlyard, not ``mpirun``, so an MPI library sees no communicator: scripts that read the
  ranks work, MPI collectives need ``mpirun`` (not done).
* ``tensorflow``: ``TF_CONFIG`` with ``worker_count`` workers (default ``instance_count``) and
  ``parameter_server_count`` parameter servers, each on its own port.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlyard.core.errors import InvalidRequestError

MAX_PROCESSES = 64
HOST = "127.0.0.1"


def instance_count(resources: Mapping[str, Any] | None) -> int:
    return int((resources or {}).get("instance_count") or 1)


def is_distributed(distribution: Mapping[str, Any] | None) -> bool:
    """True for a ``distribution`` whose processes mlyard starts (pytorch, mpi, tensorflow)."""
    return (distribution or {}).get("type") in ("pytorch", "mpi", "tensorflow")


def instance_envs(distribution: Mapping[str, Any], nodes: int, hosts: Sequence[str],
                  ports: Callable[[int, int], list[int]]) -> list[list[dict[str, str]]]:
    """The variables of each process of each of ``nodes`` instances.

    Args:
        distribution: the step's ``distribution`` (pytorch, mpi or tensorflow).
        nodes: ``resources.instance_count``.
        hosts: the address of each instance's node, as its peers reach it.
        ports: ``ports(instance, count)``, that many ports free on the instance's node.
    """
    kind = distribution.get("type")
    if kind == "tensorflow":
        workers = int(distribution.get("worker_count") or nodes)
        ps = int(distribution.get("parameter_server_count") or 0)
        tasks = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(ps)]
        on = [j % nodes for j in range(len(tasks))]  # a worker per node first, as Azure's instances take them
        free = {n: iter(ports(n, on.count(n))) for n in range(nodes) if n in on}
        where = [f"{hosts[n]}:{next(free[n])}" for n in on]
        cluster: dict[str, list[str]] = {"worker": where[:workers]}
        if ps:
            cluster["ps"] = where[workers:]
        out: list[list[dict[str, str]]] = [[] for _ in range(nodes)]
        for (t, i), n in zip(tasks, on, strict=True):
            out[n].append({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": t, "index": i},
                                                    "environment": "cloud"})})
        return out
    per_node = int(distribution.get("process_count_per_instance") or 1)
    world = nodes * per_node
    master_port = str(ports(0, 1)[0]) if kind == "pytorch" else ""  # free on instance 0's node
    out = []
    for node in range(nodes):
        envs = []
        for local in range(per_node):
            rank = node * per_node + local
            if kind == "pytorch":
                envs.append({"MASTER_ADDR": hosts[0], "MASTER_PORT": master_port, "WORLD_SIZE": str(world),
                             "NODE_RANK": str(node), "RANK": str(rank), "LOCAL_RANK": str(local),
                             "LOCAL_WORLD_SIZE": str(per_node)})
            else:  # mpi
                envs.append({"OMPI_COMM_WORLD_RANK": str(rank), "OMPI_COMM_WORLD_SIZE": str(world),
                             "OMPI_COMM_WORLD_LOCAL_RANK": str(local), "OMPI_COMM_WORLD_LOCAL_SIZE": str(per_node),
                             "OMPI_COMM_WORLD_NODE_RANK": str(node)})
        out.append(envs)
    return out


def process_count(distribution: Mapping[str, Any], nodes: int) -> int:
    """How many processes a distributed step starts in all."""
    if distribution.get("type") == "tensorflow":
        return int(distribution.get("worker_count") or nodes) + int(distribution.get("parameter_server_count") or 0)
    return nodes * int(distribution.get("process_count_per_instance") or 1)


def process_envs(distribution: Mapping[str, Any] | None, resources: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The variables of each process of a step, every instance on this machine; one empty dict for a plain step."""
    if distribution is None or not is_distributed(distribution):
        return [{}]
    nodes = instance_count(resources)
    check_count(process_count(distribution, nodes), "one machine")
    envs = instance_envs(distribution, nodes, [HOST] * nodes, lambda _, count: free_ports(count))
    return [env for instance in envs for env in instance]


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports free on ``host`` now (all held open at once, so no two are the same)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def check_count(total: int, where: str) -> None:
    if total > MAX_PROCESSES:
        raise InvalidRequestError(f"distribution asks for {total} processes on {where}; at most {MAX_PROCESSES} "
                                  "(lower resources.instance_count or process_count_per_instance)",
                                  details={"field": "distribution"})


def distributed_command(command: str, distribution: Mapping[str, Any] | None,
                        resources: Mapping[str, Any] | None) -> str:
    """``command`` itself for a plain step; otherwise the launcher that starts every process of it."""
    envs = process_envs(distribution, resources)
    if envs == [{}]:
        return command
    return launcher_command(envs, command)


def launcher_command(envs: list[dict[str, str]], command: str) -> str:
    """The launcher that starts one process of ``command`` for each of ``envs``."""
    return " ".join([shlex.quote(sys.executable), "-m", "mlyard.jobs.distribution", shlex.quote(json.dumps(envs)),
                     "--", shlex.quote(command)])


def launch(envs: list[dict[str, str]], command: str) -> int:
    """Start one shell per process, wait for all; the first failure stops the others."""
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    procs = [subprocess.Popen([shell, "-c", command], env={**os.environ, **extra})  # noqa: S603
             for extra in envs]
    print(f"[mlyard] started {len(procs)} processes: pids {', '.join(str(p.pid) for p in procs)}", flush=True)
    failed = 0
    while procs:
        for p in list(procs):
            code = p.poll()
            if code is None:
                continue
            procs.remove(p)
            if code != 0 and not failed:
                failed = code
                print(f"[mlyard] process {p.pid} exited with code {code}; stopping the others", flush=True)
                for other in procs:
                    other.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    return failed


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "--":
        print("usage: python -m mlyard.jobs.distribution PLAN -- COMMAND", file=sys.stderr)
        return 2
    return launch(json.loads(argv[0]), argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
