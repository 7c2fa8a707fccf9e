"""A distributed step's instances on Ray nodes of their own: ``resources.instance_count`` > 1 on a Ray compute.

Azure runs each of a distributed step's ``instance_count`` instances on its own node. On a ``type: ray`` compute
mlyard reserves one bundle of the step's resources per instance in a placement group with ``STRICT_SPREAD`` (every
bundle on a different node, all reserved at once, so two distributed steps never hold half a cluster each and wait
for each other), places one ``StepProcess`` actor in each bundle, and only then writes the plan: ``MASTER_ADDR`` is
instance 0's node as Ray reports its IP, ``MASTER_PORT`` a port free there (``TF_CONFIG`` names each task's node and
a port free on it). Each actor runs the distribution launcher for its own processes (``NODE_RANK`` = its index).

A cluster with fewer nodes able to hold one instance than ``instance_count`` fails the step at once, as Azure refuses
more instances than a cluster's nodes: packing instances onto shared nodes would run something other than what the
YAML asks for. Nodes that exist but are busy are waited for, as a single step's actor waits for a free node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlyard.core.errors import InvalidRequestError
from mlyard.jobs import distribution as dist
from mlyard.jobs.executors import Launch

RAY_KEYS = (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory"))
WAIT_S = 5.0


@dataclass
class Placed:
    """Instances started on their nodes: each one's actor, pid, node IP and node id, and the group holding them."""

    group: Any
    actors: list[Any]
    starts: list[tuple[int, str, str]]


def spreads(distribution: Mapping[str, Any] | None, resources: Mapping[str, Any] | None) -> bool:
    """True for a distributed step of more than one instance: its instances go to separate nodes."""
    return dist.is_distributed(distribution) and dist.instance_count(resources) > 1


def place(compute: str, launch: Launch, options: Mapping[str, Any], env: Mapping[str, str],
          actor_class: Any) -> Placed:
    """Reserve a node per instance, place an actor on each and start its share of the processes there."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    assert launch.distribution is not None
    nodes = dist.instance_count(launch.resources)
    dist.check_count(math.ceil(dist.process_count(launch.distribution, nodes) / nodes), "one Ray node")
    bundle = {ray_key: float(options[key]) for key, ray_key in RAY_KEYS if options.get(key)}
    if not bundle:
        raise InvalidRequestError(f"compute {compute!r}: each instance of a distributed step holds its Ray node by "
                                  "its resources; set resources.properties.num_cpus above 0",
                                  details={"compute": compute})
    _enough_nodes(compute, nodes, bundle)
    group = placement_group([dict(bundle) for _ in range(nodes)], strategy="STRICT_SPREAD",
                            name=f"mlyard-{launch.job}")
    actors: list[Any] = []
    try:
        while not ray.wait([group.ready()], timeout=WAIT_S)[0]:
            _enough_nodes(compute, nodes, bundle)  # a node lost while waiting: say so rather than wait for ever
        actors = [actor_class.options(**options, scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=i)).remote() for i in range(nodes)]
        hosts = [ip for ip, _ in ray.get([a.node.remote() for a in actors])]
        envs = dist.instance_envs(launch.distribution, nodes, hosts,
                                  lambda i, count: list(ray.get(actors[i].free_ports.remote(count))))
        commands = [dist.launcher_command(own, launch.command) for own in envs]
        starts = ray.get([a.start.remote(c, str(launch.cwd), dict(env)) for a, c in zip(actors, commands, strict=True)])
    except BaseException:
        for actor in actors:  # an actor's stop ends what it started; killing it alone would leave its processes
            try:
                ray.get(actor.stop.remote(), timeout=10)
            except Exception:  # noqa: BLE001, S110 - not started, or gone with its node
                pass
            ray.kill(actor)
        remove_placement_group(group)
        raise
    return Placed(group, actors, [(int(pid), str(ip), str(node)) for pid, ip, node in starts])


def _enough_nodes(compute: str, nodes: int, bundle: Mapping[str, float]) -> None:
    """Fail when fewer live nodes than ``nodes`` could hold one instance each, even idle."""
    import ray

    able = [n for n in ray.nodes() if n.get("Alive")  # type: ignore[no-untyped-call]
            and all(n.get("Resources", {}).get(k, 0) >= v for k, v in bundle.items())]
    if len(able) < nodes:
        asks = ", ".join(f"{k}={v:g}" for k, v in bundle.items())
        raise InvalidRequestError(
            f"compute {compute!r}: the distributed step asks for {nodes} instances (resources.instance_count), each "
            f"on a Ray node of its own with {asks}, and the cluster has {len(able)} such node(s); lower "
            "resources.instance_count, add nodes, or run it on local slots (compute: local), where the instances "
            "share one machine", details={"compute": compute})
