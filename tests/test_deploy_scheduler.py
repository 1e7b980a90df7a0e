"""Choosing daemons: room, resource checks, the registration plan and node lists."""
from splay.deploy.scheduler import check_resources, node_lists, plan_registration, room


def daemon(daemon_id, slots=10, memory=512, ports=100, live=0):
    return {"id": daemon_id, "name": f"d{daemon_id}", "live": live,
            "limits": {"max_instances": slots, "max_memory": memory * 2**20, "start_port": 1000,
                       "end_port": 1000 + ports - 1, "max_bandwidth": 0}}


def test_room_is_bounded_by_slots_ports_and_live_instances():
    assert room(daemon(1, slots=10, ports=100)) == 10
    assert room(daemon(1, slots=10, ports=4)) == 4
    assert room(daemon(1, slots=10, live=7)) == 3
    assert room(daemon(1, slots=2, live=5)) == 0


def test_resource_checks_say_what_is_missing():
    assert check_resources(5, 0, []) == "no daemon is connected"
    assert check_resources(20, 0, [daemon(1), daemon(2)]) is None
    assert "needs 21 nodes" in check_resources(21, 0, [daemon(1), daemon(2)])
    assert "room for 20" in check_resources(21, 0, [daemon(1), daemon(2)])
    reason = check_resources(1, 2**30, [daemon(1, memory=512), daemon(2, memory=256)])
    assert "1024 MiB" in reason and "largest daemon offers 512 MiB" in reason
    # Only daemons with enough memory count toward the room.
    assert "room for 10" in check_resources(15, 300 * 2**20, [daemon(1), daemon(2, memory=256)])


def test_plan_over_registers_by_the_factor_spread_evenly():
    plan = plan_registration(40, 1.25, 0, [daemon(i, slots=64) for i in range(8)])
    assert sum(plan.values()) == 50
    assert max(plan.values()) - min(plan.values()) <= 1
    assert plan_registration(40, 1.0, 0, [daemon(i) for i in range(8)]) == {i: 5 for i in range(8)}


def test_plan_never_exceeds_room_and_skips_small_daemons():
    daemons = [daemon(1, slots=2), daemon(2, slots=10), daemon(3, memory=64)]
    plan = plan_registration(8, 2.0, 128 * 2**20, daemons)
    assert plan == {1: 2, 2: 10}


def test_head_lists_are_shared_and_random_lists_exclude_the_node():
    assert node_lists(5, 3, "head") == [None] * 5
    for nodes, size in ((5, 3), (100, 7), (3, 10)):
        lists = node_lists(nodes, size, "random", seed=1)
        assert len(lists) == nodes
        for position, chosen in enumerate(lists):
            assert position not in chosen
            assert len(chosen) == len(set(chosen)) == min(size, nodes - 1)
            assert all(0 <= i < nodes for i in chosen)
    assert node_lists(50, 5, "random", seed=3) == node_lists(50, 5, "random", seed=3)
