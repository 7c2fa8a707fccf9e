"""A multi-node Ray cluster on this machine for tests: Ray's own ``ray.cluster_utils.Cluster`` (a head and worker
nodes as separate raylets on loopback), so one node can be killed alone and the cluster stopped without
``ray stop`` (which would end every Ray on the machine)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RayCluster:
    workers: int = 2
    cluster: Any = None
    nodes: list[Any] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def start(self) -> RayCluster:
        """A head that runs nothing (0 CPUs) and ``workers`` nodes of 1 CPU each; returns once all are up."""
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        for _ in range(self.workers):
            self.add_worker()
        return self

    @property
    def worker_ids(self) -> set[str]:
        """The Ray node ids of the live worker nodes (a step's log names the one it ran on)."""
        return {str(n.node_id) for n in self.nodes}

    def add_worker(self) -> Any:
        """One more 1-CPU worker node, returned once it is up."""
        node = self.cluster.add_node(wait=False, num_cpus=1)
        self.nodes.append(node)
        self.cluster.wait_for_nodes(timeout=120)  # generous: a loaded CI machine starts raylets slowly
        return node

    def node_of(self, pid: int) -> Any | None:
        """The worker node whose raylet is ``pid`` or one of its ancestors."""
        raylets = {p.process.pid: n for n in self.nodes for p in n.all_processes.get("raylet", [])}
        while pid > 1:
            if pid in raylets:
                return raylets[pid]
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return None
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return None

    def kill(self, node: Any) -> None:
        """The node's processes get SIGKILL, as when its machine dies."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
        os.environ.pop("RAY_ADDRESS", None)
