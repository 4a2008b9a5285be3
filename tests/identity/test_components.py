"""The in-process connected components of DuckDB's fast path, against a plain union-find."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from orchestration.identity.components import components, write_components


def _reference(node_a: np.ndarray, node_b: np.ndarray) -> dict[int, int]:
    """Node -> smallest node of its component, by a textbook union-find; self-loops link nothing."""
    parent: dict[int, int] = {}

    def find(node: int) -> int:
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    for a, b in zip(node_a.tolist(), node_b.tolist(), strict=True):
        if a == b:
            continue
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        root_a, root_b = find(a), find(b)
        # The smaller root wins, so every root is its component's smallest node.
        parent[max(root_a, root_b)] = min(root_a, root_b)
    return {node: find(node) for node in parent}


def _as_dict(node_id: np.ndarray, component_id: np.ndarray) -> dict[int, int]:
    return dict(zip(node_id.tolist(), component_id.tolist(), strict=True))


@pytest.mark.parametrize(
    ("seed", "nodes", "edges"),
    [(1, 50, 30), (2, 1_000, 600), (3, 1_000, 2_000), (4, 20_000, 15_000), (5, 5_000, 50_000)],
)
def test_random_graphs_match_a_reference_union_find(seed: int, nodes: int, edges: int) -> None:
    rng = np.random.default_rng(seed)
    node_a = rng.integers(1, nodes + 1, edges)
    node_b = rng.integers(1, nodes + 1, edges)
    node_id, component_id = components(node_a, node_b)
    expected = _reference(node_a, node_b)
    assert len(expected) > 0
    assert node_id.tolist() == sorted(expected)
    assert _as_dict(node_id, component_id) == expected


def test_sparse_node_ids_are_factorised_to_the_same_components() -> None:
    # Ids far apart take the np.unique branch instead of indexing an array by id.
    rng = np.random.default_rng(7)
    ids = rng.choice(10**15, size=3_000, replace=False) - 5 * 10**14
    node_a, node_b = rng.choice(ids, 2_000), rng.choice(ids, 2_000)
    node_id, component_id = components(node_a, node_b)
    assert int(node_id.max() - node_id.min()) > 10**12
    assert _as_dict(node_id, component_id) == _reference(node_a, node_b)


def test_a_chain_of_10000_nodes_in_shuffled_order_is_one_component() -> None:
    # A path is the worst case for label propagation (diameter-many rounds); not for a traversal.
    order = np.random.default_rng(3).permutation(10_000) + 1
    node_id, component_id = components(order[:-1], order[1:])
    assert node_id.size == 10_000
    assert (node_id[0], node_id[-1]) == (1, 10_000)
    assert set(component_id.tolist()) == {1}


def test_isolated_pairs_each_form_a_component_named_by_the_smaller_node() -> None:
    node_a = np.array([2, 3, 6, 8, 100])
    node_b = np.array([1, 4, 5, 7, 99])
    node_id, component_id = components(node_a, node_b)
    assert node_id.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 99, 100]
    assert component_id.tolist() == [1, 1, 3, 3, 5, 5, 7, 7, 99, 99]


def test_a_node_seen_only_on_a_self_loop_is_left_out_like_in_sql() -> None:
    node_id, component_id = components(np.array([4, 9, 1]), np.array([4, 9, 2]))
    assert node_id.tolist() == [1, 2]
    assert component_id.tolist() == [1, 1]


def test_empty_input_gives_empty_output_of_the_input_type() -> None:
    node_id, component_id = components(np.array([], np.int32), np.array([], np.int32))
    assert (node_id.size, component_id.size) == (0, 0)
    assert (node_id.dtype, component_id.dtype) == (np.int32, np.int32)


def test_only_self_loops_give_empty_output() -> None:
    node_id, component_id = components(np.array([3, 5]), np.array([3, 5]))
    assert (node_id.size, component_id.size) == (0, 0)


def test_output_keeps_the_promoted_integer_type_of_the_input() -> None:
    node_id, component_id = components(np.array([3], np.int32), np.array([1], np.int32))
    assert (node_id.dtype, component_id.dtype) == (np.int32, np.int32)
    node_id, _ = components(np.array([3], np.int32), np.array([1], np.int64))
    assert node_id.dtype == np.int64


def test_non_integer_node_ids_are_refused() -> None:
    with pytest.raises(TypeError, match="node ids must be integers"):
        components(np.array([1.0, 2.0]), np.array([2.0, 3.0]))


def test_write_components_matches_large_small_star_shape_on_duckdb() -> None:
    con = duckdb.connect()
    con.execute(
        "create table edges as select * from (values "
        "(5, 3), (3, 7), (10, 11), (12, 12), (null, 1), (1, null), (20, 21), (21, 20)"
        ") as edges(node_a, node_b)"
    )
    run = write_components(con, "select node_a, node_b from edges -- trailing comment", "built")
    # Null ends and self-loops link nothing, so nodes 1 and 12 are absent, as in the SQL path.
    assert con.execute("select * from built order by node_id").fetchall() == [
        (3, 3),
        (5, 3),
        (7, 3),
        (10, 10),
        (11, 10),
        (20, 20),
        (21, 20),
    ]
    assert con.execute("select column_type from (describe built)").fetchall() == [
        ("INTEGER",),
        ("INTEGER",),
    ]
    assert (run.edges, run.nodes, run.components) == (6, 7, 3)
