"""A distributed step's plan over instances on separate nodes: each instance's variables name the nodes' own
addresses and ports free on them (a Ray compute's nodes; local slots use 127.0.0.1 for all)."""

from __future__ import annotations

import json

from mlyard.jobs.distribution import instance_envs, process_envs

HOSTS = ["10.0.0.1", "10.0.0.2"]


def _ports(instance: int, count: int) -> list[int]:
    """Ports "free" on each node: 1000, 1001, ... on node 0, 2000, ... on node 1, so the test sees whose they are."""
    return [1000 * (instance + 1) + i for i in range(count)]


def test_pytorch_instances_have_their_node_rank_and_the_master_on_instance_0s_node() -> None:
    plan = instance_envs({"type": "pytorch", "process_count_per_instance": 2}, 2, HOSTS, _ports)
    assert [[(e["RANK"], e["LOCAL_RANK"], e["NODE_RANK"]) for e in node] for node in plan] == \
        [[("0", "0", "0"), ("1", "1", "0")], [("2", "0", "1"), ("3", "1", "1")]]
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"], e["WORLD_SIZE"]) for node in plan for e in node} == \
        {("10.0.0.1", "1000", "4")}


def test_tensorflow_tasks_take_the_nodes_in_turn_each_at_its_nodes_address() -> None:
    plan = instance_envs({"type": "tensorflow", "worker_count": 2, "parameter_server_count": 1}, 2, HOSTS, _ports)
    configs = [[json.loads(e["TF_CONFIG"]) for e in node] for node in plan]
    assert [[(c["task"]["type"], c["task"]["index"]) for c in node] for node in configs] == \
        [[("worker", 0), ("ps", 0)], [("worker", 1)]]
    assert configs[0][0]["cluster"] == {"worker": ["10.0.0.1:1000", "10.0.0.2:2000"], "ps": ["10.0.0.1:1001"]}


def test_local_slots_keep_one_plan_on_loopback_and_a_plain_step_none() -> None:
    envs = process_envs({"type": "mpi", "process_count_per_instance": 2}, {"instance_count": 2})
    assert [(e["OMPI_COMM_WORLD_RANK"], e["OMPI_COMM_WORLD_NODE_RANK"]) for e in envs] == \
        [("0", "0"), ("1", "0"), ("2", "1"), ("3", "1")]
    assert process_envs(None, {"instance_count": 3}) == [{}] and process_envs({"type": "ray"}, None) == [{}]
