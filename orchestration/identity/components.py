"""Connected components of an integer edge list, in process: DuckDB's fast path for identity.

`components` is the algorithm, a pure function over numpy arrays. `write_components` is the glue
the DuckDB `connected_components` materialization runs on dbt-duckdb's own connection: it reads
the model's edges, computes, and writes the (node_id, component_id) table. The output is exactly
that of macro large_small_star: one row per node on an edge between two different non-null
nodes, component_id being the smallest node id of the node's component.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

# Node ids spanning at most this many slots per edge endpoint are used as array indices as they
# are; sparser ids are factorised first. Tessera's node ids are dense (row_number), and
# factorising 20M ids with np.unique costs more than the components themselves (6.7 s against
# 3.5 s for 10M edges, measured on the 2-core dev machine).
_DENSE_SLOTS_PER_ENDPOINT = 2

_REGISTERED_NAME = "__tessera_connected_components"


@dataclass(frozen=True)
class ComponentsRun:
    """What one run of the fast path did, for the log."""

    edges: int
    nodes: int
    components: int
    read_seconds: float
    compute_seconds: float
    write_seconds: float

    def describe(self) -> str:
        return (
            f"{self.edges:,} edges -> {self.nodes:,} nodes in {self.components:,} components; "
            f"read {self.read_seconds:.2f} s, compute {self.compute_seconds:.2f} s, "
            f"write {self.write_seconds:.2f} s"
        )


def components(node_a: np.ndarray, node_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node_id, component_id) for every node on an edge, sorted by node_id.

    Edges are undirected; a self-loop links nothing, so a node seen only on self-loops is left
    out, as the SQL algorithm does. component_id is the smallest node id of the component. Both
    arrays have the dtype the two inputs promote to.
    """
    node_a = np.asarray(node_a)
    node_b = np.asarray(node_b)
    if node_a.shape != node_b.shape or node_a.ndim != 1:
        raise ValueError(
            f"node_a and node_b must be 1-D and equally long, got {node_a.shape} and {node_b.shape}"
        )
    dtype = np.result_type(node_a, node_b)
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"node ids must be integers, got {node_a.dtype} and {node_b.dtype}")
    linking = node_a != node_b
    if not linking.all():
        node_a, node_b = node_a[linking], node_b[linking]
    if node_a.size == 0:
        return np.empty(0, dtype=dtype), np.empty(0, dtype=dtype)

    low = min(int(node_a.min()), int(node_b.min()))
    span = max(int(node_a.max()), int(node_b.max())) - low + 1
    if span <= _DENSE_SLOTS_PER_ENDPOINT * 2 * node_a.size:
        nodes = None
        index_a, index_b = node_a - low, node_b - low
        size = span
    else:
        nodes, inverse = np.unique(np.concatenate([node_a, node_b]), return_inverse=True)
        index_a, index_b = inverse[: node_a.size], inverse[node_a.size :]
        size = nodes.size
    index_type = np.int32 if size < np.iinfo(np.int32).max else np.int64
    index_a = index_a.astype(index_type, copy=False)
    index_b = index_b.astype(index_type, copy=False)

    # float64 weights because csgraph converts to them anyway; duplicate edges stay duplicated,
    # which a traversal does not mind, rather than paying for a sort to sum them.
    graph = csr_array(
        (np.ones(index_a.size, dtype=np.float64), (index_a, index_b)), shape=(size, size)
    )
    count, labels = connected_components(graph, directed=False)

    on_edge = np.zeros(size, dtype=bool)
    on_edge[index_a] = True
    on_edge[index_b] = True
    present = np.flatnonzero(on_edge)
    # Indices are in node order, so the smallest index of a label is its smallest node id.
    smallest = np.full(count, size, dtype=np.int64)
    np.minimum.at(smallest, labels[present], present)
    root = smallest[labels[present]]

    if nodes is None:
        return (present + low).astype(dtype), (root + low).astype(dtype)
    return nodes[present].astype(dtype, copy=False), nodes[root].astype(dtype, copy=False)


def write_components(con: Any, edges_sql: str, output: str) -> ComponentsRun:
    """Compute the components of the query `edges_sql` (node_a, node_b) into new table `output`.

    `con` is a DuckDB connection or cursor, or dbt-duckdb's wrapper of one; everything runs on it,
    so inside dbt the read sees the transaction's uncommitted tables and the write is part of it.
    """
    started = time.perf_counter()
    # The query goes on its own lines: a trailing `--` comment in it must not eat the wrapper.
    columns = con.execute(
        f"select node_a, node_b from (\n{edges_sql}\n) as edges\n"
        "where node_a is not null and node_b is not null"
    ).fetchnumpy()
    node_a, node_b = np.asarray(columns["node_a"]), np.asarray(columns["node_b"])
    read = time.perf_counter()

    node_id, component_id = components(node_a, node_b)
    computed = time.perf_counter()

    table = pa.table({"node_id": node_id, "component_id": component_id})
    con.register(_REGISTERED_NAME, table)
    try:
        con.execute(
            f"create table {output} as select node_id, component_id from {_REGISTERED_NAME}"
        )
    finally:
        con.unregister(_REGISTERED_NAME)
    written = time.perf_counter()

    return ComponentsRun(
        edges=int(node_a.size),
        nodes=int(node_id.size),
        # Each component holds its own smallest node: count those rather than sort for unique.
        components=int(np.count_nonzero(node_id == component_id)),
        read_seconds=read - started,
        compute_seconds=computed - read,
        write_seconds=written - computed,
    )
