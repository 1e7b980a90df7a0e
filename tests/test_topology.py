"""Network emulation models: ModelNet XML topologies with shortest paths, latency matrices,
uniform models, partitions, and errors with line numbers for bad files."""
import math
from pathlib import Path

import pytest

from splay.emulation import (LinkModel, Partition, TopologyError, load_link_model, parse_matrix,
                             parse_modelnet, parse_uniform)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "topology"

KBIT = 1000 / 8   # bytes per second in one kbit/s


def topology(vertices, edges, specs=""):
    return f"""<?xml version="1.0"?>
<topology>
  <vertices>
{vertices}
  </vertices>
  <edges>
{edges}
  </edges>
  <specs>
{specs}
  </specs>
</topology>
"""


def edge(src, dst, delay, kbps=None, plr=None, specs=None):
    attributes = f'int_src="{src}" int_dst="{dst}"'
    if delay is not None:
        attributes += f' int_delayms="{delay}"'
    if kbps is not None:
        attributes += f' dbl_kbps="{kbps}"'
    if plr is not None:
        attributes += f' dbl_plr="{plr}"'
    if specs is not None:
        attributes += f' specs="{specs}"'
    return f"    <edge {attributes}/>"


def both_ways(a, b, delay, kbps=None, plr=None):
    return edge(a, b, delay, kbps, plr) + "\n" + edge(b, a, delay, kbps, plr)


# ---------------------------------------------------------------- the 4-node example

def test_four_node_example_delays_bandwidths_losses_and_routes():
    model = load_link_model(EXAMPLES / "four-nodes.xml")
    assert model.nodes == 4
    # same router: two client-stub links of 5 ms and 10000 kbit/s
    assert model.between(0, 1) == pytest.approx((0.010, 10000 * KBIT, 0.0))
    # across the routers: 5 + 40 + 5 ms, bottleneck 1000 kbit/s, the stub-stub link loses 1%
    assert model.between(0, 2) == pytest.approx((0.050, 1000 * KBIT, 0.01))
    # node 3's access link overrides the class delay with 20 ms
    assert model.between(3, 0) == pytest.approx((0.065, 1000 * KBIT, 0.01))
    assert model.quality(0, 3).route == (1, 5, 6, 4)
    assert model.between(2, 2) == (0.0, math.inf, 0.0)


def test_path_loss_combines_the_losses_of_its_links():
    vertices = "\n".join(f'    <vertex int_idx="{i}" role="virtnode" int_vn="{i}"/>' for i in (1, 2)) + \
        '\n    <vertex int_idx="3" role="gateway"/>'
    edges = "\n".join([both_ways(1, 3, 1, plr=0.1), both_ways(3, 2, 1, plr=0.2)])
    model = parse_modelnet(topology(vertices, edges)).link_model()
    assert model.between(0, 1)[2] == pytest.approx(1 - 0.9 * 0.8)
    assert model.between(0, 1)[1] == math.inf     # no bandwidth anywhere: unlimited


def test_least_delay_wins_over_fewer_hops_and_ties_go_to_fewer_hops():
    vertices = "\n".join(f'    <vertex int_idx="{i}" role="{"virtnode" if i < 3 else "gateway"}"/>'
                         for i in (1, 2, 3, 4, 5))
    edges = "\n".join([
        both_ways(1, 2, 50, kbps=100),                          # direct, slow: 50 ms
        both_ways(1, 3, 10, kbps=5000), both_ways(3, 2, 10, kbps=2000),   # 20 ms via 3
        both_ways(1, 4, 5), both_ways(4, 5, 5), both_ways(5, 2, 10),       # 20 ms via 4, 5
    ])
    model = parse_modelnet(topology(vertices, edges)).link_model()
    quality = model.quality(0, 1)
    assert quality.delay_s == pytest.approx(0.020)
    assert quality.route == (1, 3, 2)
    assert quality.bandwidth == pytest.approx(2000 * KBIT)


def test_edges_are_one_way_and_unreachable_pairs_cannot_talk():
    vertices = '    <vertex int_idx="0" role="virtnode"/>\n    <vertex int_idx="1" role="virtnode"/>'
    model = parse_modelnet(topology(vertices, edge(0, 1, 7))).link_model()
    assert model.between(0, 1) == pytest.approx((0.007, math.inf, 0.0))
    assert model.between(1, 0) == (math.inf, 0.0, 1.0)
    assert not model.reachable(1, 0) and model.reachable(0, 1)


def test_job_nodes_map_to_virtnodes_in_int_vn_order():
    vertices = "\n".join([
        '    <vertex int_idx="10" role="virtnode" int_vn="2"/>',
        '    <vertex int_idx="11" role="virtnode" int_vn="0"/>',
        '    <vertex int_idx="12" role="gateway"/>',
        '    <vertex int_idx="13" role="virtnode" int_vn="1"/>'])
    edges = "\n".join([both_ways(10, 12, 1), both_ways(11, 12, 2), both_ways(13, 12, 4)])
    parsed = parse_modelnet(topology(vertices, edges))
    assert parsed.clients == [11, 13, 10]
    model = parsed.link_model()
    assert model.between(0, 1)[0] == pytest.approx(0.006)   # vertex 11 -> 13
    assert model.between(2, 0)[0] == pytest.approx(0.003)   # vertex 10 -> 11


def test_without_virtnodes_every_vertex_is_a_job_node():
    vertices = '    <vertex int_idx="2"/>\n    <vertex int_idx="1"/>'
    parsed = parse_modelnet(topology(vertices, both_ways(1, 2, 3)))
    assert parsed.clients == [1, 2]


def test_edge_values_override_their_link_class():
    vertices = '    <vertex int_idx="0" role="virtnode"/>\n    <vertex int_idx="1" role="virtnode"/>'
    edges = edge(0, 1, None, specs="lan") + "\n" + edge(1, 0, 3, specs="lan")
    specs = '    <lan int_delayms="1" dbl_kbps="800" dbl_plr="0.5" int_qlen="10"/>'
    model = parse_modelnet(topology(vertices, edges, specs)).link_model()
    assert model.between(0, 1) == pytest.approx((0.001, 800 * KBIT, 0.5))
    assert model.between(1, 0) == pytest.approx((0.003, 800 * KBIT, 0.5))


# ---------------------------------------------------------------- partitions

def test_cut_and_heal_between_groups():
    model = load_link_model(EXAMPLES / "four-nodes.xml")
    before = model.between(0, 2)
    partition = model.cut([0, 1], [2, 3])
    assert isinstance(partition, Partition) and model.partitions == (partition,)
    assert model.between(0, 2) == (math.inf, 0.0, 1.0)
    assert model.between(3, 1) == (math.inf, 0.0, 1.0)
    assert model.between(0, 1) == pytest.approx((0.010, 10000 * KBIT, 0.0))   # same side: untouched
    assert model.heal(partition) == 1
    assert model.between(0, 2) == before
    with pytest.raises(ValueError, match="not in force"):
        model.heal(partition)


def test_cut_one_group_from_the_rest_and_heal_by_groups():
    model = load_link_model(EXAMPLES / "four-nodes.matrix")
    model.cut(2)
    assert not model.reachable(2, 0) and not model.reachable(3, 2)
    assert model.reachable(0, 3)
    assert model.heal([3, 0, 1], [2]) == 1       # the same two groups, in any order
    assert model.reachable(2, 0)
    model.cut([0], [1])
    model.cut([2], [3])
    assert model.heal() == 2 and model.partitions == ()


def test_bad_cuts_are_refused():
    model = LinkModel.uniform(10)
    with pytest.raises(ValueError, match="both sides"):
        model.cut([1, 2], [2, 3])
    with pytest.raises(ValueError, match="is empty"):
        model.cut([], [1])
    with pytest.raises(ValueError, match="give both groups"):
        model.cut([1])
    with pytest.raises(ValueError, match="no cut between"):
        model.heal([1], [2])
    sized = LinkModel.uniform(10, nodes=3)
    with pytest.raises(IndexError, match="node 5"):
        sized.cut([5], [0])


# ---------------------------------------------------------------- matrix and uniform models

def test_matrix_example():
    model = load_link_model(EXAMPLES / "four-nodes.matrix")
    assert model.names == ["a", "b", "c", "d"] and model.index("c") == 2
    assert model.between(0, 1) == pytest.approx((0.010, math.inf, 0.0))
    assert model.between(0, 2) == pytest.approx((0.050, 1000 * KBIT, 0.01))
    assert model.between(2, 0) == pytest.approx((0.050, 1000 * KBIT, 0.0))   # rows are sources
    with pytest.raises(IndexError):
        model.between(0, 4)
    with pytest.raises(KeyError):
        model.index("e")


def test_matrix_no_connectivity_and_star_bandwidth():
    model = parse_matrix("p q\np - x\nq 4/*/0.5 -\n")
    assert model.between(0, 1) == (math.inf, 0.0, 1.0)
    assert model.between(1, 0) == pytest.approx((0.004, math.inf, 0.5))


def test_uniform_model():
    model = load_link_model(EXAMPLES / "uniform.model")
    assert model.nodes is None
    assert model.between(3, 1000) == pytest.approx((0.050, 10000 * KBIT, 0.001))
    assert parse_uniform("uniform delay_ms=5 nodes=3").nodes == 3
    with pytest.raises(TypeError):
        model.between("a", 1)


# ---------------------------------------------------------------- bad files

@pytest.mark.parametrize("text, line, column, words", [
    ("<topology>\n  <vertices>\n    <vertex int_idx='1'>\n  </vertices>\n</topology>\n", 4, 5,
     "not well-formed XML"),
    ("<graph/>\n", 1, 1, "root element must be <topology>"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n<vertex int_idx='1'/>\n</vertices>\n</topology>", 4, 1,
     "vertex 1 is defined twice (first at line 3)"),
    ("<topology>\n<vertices>\n<vertex role='virtnode'/>\n</vertices>\n</topology>", 3, 1, "no int_idx"),
    ("<topology>\n<vertices>\n<vertex int_idx='one'/>\n</vertices>\n</topology>", 3, 1, "is not a number"),
    ("<topology>\n<vertices/>\n</topology>", 1, 1, "no <vertex>"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n</vertices>\n<edges>\n"
     "<edge int_src='1' int_dst='2' int_delayms='3'/>\n</edges>\n</topology>", 6, 1, "int_dst=2 names no vertex"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n<vertex int_idx='2'/>\n</vertices>\n<edges>\n"
     "  <edge int_src='1' int_dst='2' specs='wan'/>\n</edges>\n<specs><lan int_delayms='1'/></specs>\n"
     "</topology>", 7, 3, "specs='wan' is not a link class in <specs> (known: lan)"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n<vertex int_idx='2'/>\n</vertices>\n<edges>\n"
     "<edge int_src='1' int_dst='2'/>\n</edges>\n</topology>", 7, 1, "has no int_delayms"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n<vertex int_idx='2'/>\n</vertices>\n<edges>\n"
     "<edge int_src='1' int_dst='2' int_delayms='-4'/>\n</edges>\n</topology>", 7, 1, "cannot be negative"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n<vertex int_idx='2'/>\n</vertices>\n<edges>\n"
     "<edge int_src='1' int_dst='2' int_delayms='4' dbl_plr='1.5'/>\n</edges>\n</topology>", 7, 1,
     "loss rate is between 0 and 1"),
    ("<topology>\n<vertices>\n<vertex int_idx='1'/>\n</vertices>\n<specs>\n"
     "  <lan int_delayms='1' dbl_kbps='0'/>\n</specs>\n</topology>", 6, 3, "must be above 0 kbit/s"),
    ("<topology>\n<vertices>\n<vertex int_idx='1' role='virtnode' int_vn='1'/>\n"
     "<vertex int_idx='2' role='virtnode' int_vn='1'/>\n</vertices>\n</topology>", 4, 1, "int_vn 1 is used twice"),
])
def test_bad_topologies_give_line_column_and_reason(tmp_path, text, line, column, words):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(TopologyError) as caught:
        load_link_model(path)
    error = caught.value
    assert words in error.message
    assert (error.line, error.column) == (line, column), str(error)
    assert str(error).startswith(f"{path}:{line}:{column}: ")


@pytest.mark.parametrize("text, line, column, words", [
    ("", 1, 1, "the matrix is empty"),
    ("# names\na b\na - 1\n", 3, 1, "names 2 nodes but 1 rows follow"),
    ("a a\na - 1\na 1 -\n", 1, 3, "appears twice"),
    ("a b\na - 1\nc 1 -\n", 3, 1, "should start with 'b'"),
    ("a b\na - 1 2\nb 1 -\n", 2, 7, "has 3 cells, expected 2"),
    ("a b\na -\nb 1 -\n", 2, 3, "has 1 cells, expected 2"),
    ("a b\na - ten\nb 1 -\n", 2, 5, "the delay 'ten' is not a number"),
    ("a b\na - 1/fast\nb 1 -\n", 2, 5, "the bandwidth 'fast' is not a number"),
    ("a b\na - 1/10/2\nb 1 -\n", 2, 5, "loss rate is between 0 and 1"),
    ("a b\na - -1\nb 1 -\n", 2, 5, "cannot be negative"),
    ("a b\na 5 1\nb 1 -\n", 2, 3, "diagonal cell of 'a'"),
    ("a b\na - 1/2/3/4\nb 1 -\n", 2, 5, "more than 3 parts"),
    ("uniform kbps=3\n", 1, 1, "needs delay_ms="),
    ("uniform delay_ms=3 speed=4\n", 1, 20, "expected delay_ms="),
    ("uniform delay_ms=fast\n", 1, 9, "is not a number"),
    ("uniform delay_ms=3 loss=2\n", 1, 1, "0 <= loss <= 1"),
])
def test_bad_matrix_and_uniform_files_give_line_column_and_reason(tmp_path, text, line, column, words):
    path = tmp_path / "bad.matrix"
    path.write_text(text)
    with pytest.raises(TopologyError) as caught:
        load_link_model(path)
    error = caught.value
    assert words in error.message
    assert (error.line, error.column) == (line, column), str(error)
