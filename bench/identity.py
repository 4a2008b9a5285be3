"""Benchmark: identity stitching on DuckDB, Tessera's fast path against scipy and label propagation.

Prints one JSON document. For each size, one DuckDB file holds an identity-like graph as a table
of string identifier pairs, and three methods each turn it into an identifier -> component map:

- tessera: what the identity models do on DuckDB: identifiers numbered in SQL as
  models/identity/identity_nodes.sql does, integer edges joined in SQL, components by the
  connected_components fast path (orchestration.identity.components.write_components), the map
  joined in SQL as models/identity/identity_map.sql does;
- scipy: the plain in-memory way: string pairs read as Arrow, factorised by Arrow's hash
  dictionary, scipy.sparse.csgraph.connected_components, the map written back;
- label_propagation: min-label propagation in DuckDB SQL over the same numbered edges, rounds
  repeated until no label changes (what most dbt identity packages do, but run to convergence).

Each method runs in a subprocess of its own, so its peak memory (ru_maxrss: Python, Arrow and
DuckDB alike) is its own. All three must find the same partition.

Targets at 10M edges: Tessera within 3x of scipy end to end, and at least 5x faster than label
propagation.

The graph: a person has 1 + Poisson(4) identifiers (user ids, emails, phones, device and
anonymous ids), linked as a random tree (each identifier to a random earlier one of the same
person) plus extra links inside the person up to the requested edge count: about one identifier
per edge. One person in 2,000 is a heavy user whose 40 identifiers form a chain, a shape real
identity graphs have (reference notes) and the one that makes label propagation slow.

    python bench/identity.py [--edges 100000,1000000,10000000] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from orchestration.identity.components import write_components

TARGET_EDGES = 10_000_000
TARGET_SCIPY_RATIO = 3.0
TARGET_LABEL_PROPAGATION_SPEEDUP = 5.0
METHODS = ("tessera", "scipy", "label_propagation")
IDENTIFIERS_PER_PERSON = 5.0
HEAVY_USER_EVERY = 2_000
HEAVY_USER_CHAIN = 40
# Identifier types and how a value of each is spelled, from the identifier's number.
_VALUES = {
    0: "'user_id:' || cast(10000000 + identifier_no as varchar)",
    1: "'email:' || substr(md5(cast(identifier_no as varchar)), 1, 10) || '@mail.example.org'",
    2: "'phone:+1' || cast(2000000000 + identifier_no as varchar)",
    3: "'device_id:' || upper(substr(md5('d' || cast(identifier_no as varchar)), 1, 16))",
    4: "'anonymous_id:' || md5('a' || cast(identifier_no as varchar))",
}


def _graph(edges: int, seed: int) -> tuple[Any, Any, int, int]:
    """(identifier_a, identifier_b) as identifier numbers, the identifier count, the people."""
    rng = np.random.default_rng(seed)
    people = max(1, round(edges / IDENTIFIERS_PER_PERSON))
    held = 1 + rng.poisson(IDENTIFIERS_PER_PERSON - 1, people)
    heavy = np.zeros(people, dtype=bool)
    heavy[::HEAVY_USER_EVERY] = True
    held[heavy] = HEAVY_USER_CHAIN
    first = np.cumsum(held) - held
    identifiers = int(held.sum())
    owner_first = np.repeat(first, held)
    owner_held = np.repeat(held, held)
    owner_heavy = np.repeat(heavy, held)
    position = np.arange(identifiers) - owner_first

    # Tree: every identifier but a person's first links to a random earlier one of the person;
    # a heavy user's identifiers link to the one just before, a chain.
    child = np.flatnonzero(position > 0)
    earlier = (rng.random(child.size) * position[child]).astype(np.int64)
    is_heavy = owner_heavy[child]
    earlier[is_heavy] = position[child][is_heavy] - 1
    node_a, node_b = [child], [owner_first[child] + earlier]

    # Extra links inside people with two identifiers or more, up to the requested edge count.
    extra = max(0, edges - child.size)
    if extra:
        candidates = np.flatnonzero((owner_held > 1) & ~owner_heavy)
        source = rng.choice(candidates, extra)
        offset = 1 + (rng.random(extra) * (owner_held[source] - 1)).astype(np.int64)
        target = owner_first[source] + (position[source] + offset) % owner_held[source]
        node_a.append(source)
        node_b.append(target)
    node_a, node_b = np.concatenate(node_a)[:edges], np.concatenate(node_b)[:edges]
    # Identifier numbers in random order, so that neither the numbering nor the file's row order
    # follows people.
    shuffle = rng.permutation(identifiers)
    order = rng.permutation(node_a.size)
    return shuffle[node_a[order]], shuffle[node_b[order]], identifiers, people


def generate(path: Path, edges: int, seed: int) -> dict[str, int]:
    """Write table identifier_pairs (identifier_a, identifier_b: strings) to a new DuckDB file."""
    node_a, node_b, identifiers, people = _graph(edges, seed)
    spelled = "case identifier_no % 5 " + " ".join(
        f"when {kind} then {value}" for kind, value in _VALUES.items()
    )
    con = duckdb.connect(str(path))
    try:
        numbers = pa.table({"no_a": node_a, "no_b": node_b})
        con.register("numbers", numbers)
        con.execute(
            f"create table identifiers as select identifier_no, {spelled} end as identifier "
            f"from range({identifiers}) as numbers(identifier_no)"
        )
        con.execute(
            """
            create table identifier_pairs as
            select identifier_a.identifier as identifier_a, identifier_b.identifier as identifier_b
            from numbers
            inner join identifiers as identifier_a on numbers.no_a = identifier_a.identifier_no
            inner join identifiers as identifier_b on numbers.no_b = identifier_b.identifier_no
            order by random()
            """
        )
        con.unregister("numbers")
        con.execute("drop table identifiers")
        con.execute("checkpoint")
    finally:
        con.close()
    return {"edges": int(node_a.size), "identifiers": identifiers, "people": people}


# Identifiers numbered as models/identity/identity_nodes.sql does: distinct, then row_number in
# (type, value) order; here type and value are one string.
_NODES = """
    create table {table} as
    with identifiers as (
        select identifier_a as identifier from identifier_pairs
        union
        select identifier_b as identifier from identifier_pairs
    )
    select identifier, row_number() over (order by identifier) as node_id
    from identifiers
"""
_EDGES = """
    create table {table} as
    select node_a.node_id as node_a, node_b.node_id as node_b
    from identifier_pairs as pairs
    inner join {nodes} as node_a on pairs.identifier_a = node_a.identifier
    inner join {nodes} as node_b on pairs.identifier_b = node_b.identifier
"""


def _timed(steps: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = step()
    steps[name] = round(time.perf_counter() - started, 3)
    return result


def run_tessera(con: Any) -> dict[str, Any]:
    steps: dict[str, float] = {}
    _timed(steps, "number_identifiers", lambda: con.execute(_NODES.format(table="t_nodes")))
    _timed(
        steps, "integer_edges", lambda: con.execute(_EDGES.format(table="t_edges", nodes="t_nodes"))
    )
    run = _timed(
        steps,
        "components",
        lambda: write_components(con, "select node_a, node_b from t_edges", "t_components"),
    )
    steps.update(
        components_read=round(run.read_seconds, 3),
        components_compute=round(run.compute_seconds, 3),
        components_write=round(run.write_seconds, 3),
    )
    _timed(
        steps,
        "write_map",
        lambda: con.execute(
            """
            create table map_tessera as
            select
                nodes.identifier,
                coalesce(components.component_id, nodes.node_id) as component_id
            from t_nodes as nodes
            left join t_components as components on nodes.node_id = components.node_id
            """
        ),
    )
    return {"rounds": 1, "steps": steps, "scratch_tables": ["t_nodes", "t_edges", "t_components"]}


def run_scipy(con: Any) -> dict[str, Any]:
    steps: dict[str, float] = {}
    pairs = _timed(
        steps,
        "read",
        lambda: con.sql("select identifier_a, identifier_b from identifier_pairs").to_arrow_table(),
    )

    def factorise() -> tuple[Any, Any]:
        both = pa.chunked_array(pairs["identifier_a"].chunks + pairs["identifier_b"].chunks)
        encoded = both.combine_chunks().dictionary_encode()
        return encoded.dictionary, encoded.indices.to_numpy()

    identifiers, indices = _timed(steps, "factorise", factorise)

    def compute() -> Any:
        size = len(identifiers)
        half = indices.size // 2
        graph = csr_array((np.ones(half), (indices[:half], indices[half:])), shape=(size, size))
        return connected_components(graph, directed=False)[1]

    labels = _timed(steps, "components", compute)

    def write() -> None:
        con.register("scipy_map", pa.table({"identifier": identifiers, "component_id": labels}))
        con.execute("create table map_scipy as select identifier, component_id from scipy_map")
        con.unregister("scipy_map")

    _timed(steps, "write_map", write)
    return {"rounds": 1, "steps": steps}


def run_label_propagation(con: Any) -> dict[str, Any]:
    steps: dict[str, float] = {}
    _timed(steps, "number_identifiers", lambda: con.execute(_NODES.format(table="lp_nodes")))
    _timed(
        steps,
        "integer_edges",
        lambda: con.execute(_EDGES.format(table="lp_edges", nodes="lp_nodes")),
    )

    def prepare() -> None:
        # Both directions, plus each node to itself so a node keeps its label when it is smaller.
        con.execute(
            """
            create table lp_links as
            select node_a as node, node_b as neighbour from lp_edges
            union all
            select node_b as node, node_a as neighbour from lp_edges
            union all
            select node_id as node, node_id as neighbour from lp_nodes
            """
        )
        con.execute(
            "create table lp_labels as select node_id as node, node_id as label from lp_nodes"
        )

    _timed(steps, "prepare", prepare)

    def propagate() -> int:
        rounds = 0
        while True:
            rounds += 1
            con.execute(
                """
                create table lp_next as
                select links.node, min(labels.label) as label
                from lp_links as links
                inner join lp_labels as labels on links.neighbour = labels.node
                group by links.node
                """
            )
            changed = con.execute(
                "select count(*) from lp_next inner join lp_labels using (node) "
                "where lp_next.label <> lp_labels.label"
            ).fetchall()[0][0]
            con.execute("drop table lp_labels")
            con.execute("alter table lp_next rename to lp_labels")
            if changed == 0:
                return rounds

    rounds = _timed(steps, "propagate", propagate)
    _timed(
        steps,
        "write_map",
        lambda: con.execute(
            """
            create table map_label_propagation as
            select nodes.identifier, labels.label as component_id
            from lp_nodes as nodes
            inner join lp_labels as labels on nodes.node_id = labels.node
            """
        ),
    )
    return {
        "rounds": rounds,
        "steps": steps,
        "scratch_tables": ["lp_nodes", "lp_edges", "lp_links", "lp_labels"],
    }


_RUNNERS = {
    "tessera": run_tessera,
    "scipy": run_scipy,
    "label_propagation": run_label_propagation,
}


def run_method(method: str, database: Path) -> dict[str, Any]:
    """One method end to end on the file, in this process; what a subprocess reports.

    The clock runs from the string pairs in the file to the map table in it; imports and the
    dropping of a method's scratch tables afterwards are left out, the same for every method.
    """
    con = duckdb.connect(str(database))
    try:
        con.execute(f"drop table if exists map_{method}")
        started = time.perf_counter()
        result = _RUNNERS[method](con)
        seconds = time.perf_counter() - started
        for table in result.pop("scratch_tables", []):
            con.execute(f"drop table {table}")
        threads = con.execute("select current_setting('threads')").fetchall()[0][0]
    finally:
        con.close()
    return {
        "seconds": round(seconds, 2),
        **result,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "duckdb_threads": int(threads),
    }


def _in_subprocess(method: str, database: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--method", method, "--database", str(database)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def same_partition(database: Path, left: str, right: str) -> bool:
    """Whether two identifier -> component maps group the same identifiers together."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        joined, left_rows, right_rows, left_groups, right_groups, pairs = con.execute(
            f"""
            select
                count(*),
                (select count(*) from map_{left}),
                (select count(*) from map_{right}),
                count(distinct l.component_id),
                count(distinct r.component_id),
                count(distinct (l.component_id, r.component_id))
            from map_{left} as l
            inner join map_{right} as r on l.identifier = r.identifier
            """
        ).fetchall()[0]
    finally:
        con.close()
    # Same identifiers, and every group of one is exactly one group of the other.
    return joined == left_rows == right_rows and left_groups == right_groups == pairs


def bench_size(edges: int, seed: int, folder: Path) -> dict[str, Any]:
    database = folder / f"identity_{edges}.duckdb"
    started = time.perf_counter()
    graph = generate(database, edges, seed)
    generate_seconds = time.perf_counter() - started
    methods = {method: _in_subprocess(method, database) for method in METHODS}
    tessera = methods["tessera"]["seconds"]
    result = {
        **graph,
        "generate_seconds": round(generate_seconds, 2),
        "methods": methods,
        "same_partition": {
            "tessera_scipy": same_partition(database, "tessera", "scipy"),
            "tessera_label_propagation": same_partition(database, "tessera", "label_propagation"),
        },
        "tessera_over_scipy": round(tessera / methods["scipy"]["seconds"], 2),
        "label_propagation_over_tessera": round(
            methods["label_propagation"]["seconds"] / tessera, 2
        ),
    }
    database.unlink()
    return result


def _targets(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    at_target = next((size for size in sizes if size["edges"] == TARGET_EDGES), None)
    if at_target is None:
        return {"edges": TARGET_EDGES, "measured": False}
    scipy_ratio = at_target["tessera_over_scipy"]
    speedup = at_target["label_propagation_over_tessera"]
    return {
        "edges": TARGET_EDGES,
        "measured": True,
        "tessera_within_3x_of_scipy": {
            "tessera_over_scipy": scipy_ratio,
            "target": TARGET_SCIPY_RATIO,
            "met": scipy_ratio <= TARGET_SCIPY_RATIO,
        },
        "tessera_5x_faster_than_label_propagation": {
            "label_propagation_over_tessera": speedup,
            "target": TARGET_LABEL_PROPAGATION_SPEEDUP,
            "met": speedup >= TARGET_LABEL_PROPAGATION_SPEEDUP,
        },
        "same_partition": all(at_target["same_partition"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", default="100000,1000000,10000000")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.method:
        print(json.dumps(run_method(args.method, args.database)))
        return

    edge_counts = [int(value) for value in args.edges.split(",") if value.strip()]
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        sizes = [bench_size(edges, args.seed, Path(folder)) for edges in edge_counts]
    print(
        json.dumps(
            {
                "benchmark": "identity",
                "seed": args.seed,
                "cpu_count": os.cpu_count(),
                "graph": {
                    "identifiers_per_person": IDENTIFIERS_PER_PERSON,
                    "heavy_user_every": HEAVY_USER_EVERY,
                    "heavy_user_chain": HEAVY_USER_CHAIN,
                },
                "sizes": sizes,
                "targets": _targets(sizes),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
