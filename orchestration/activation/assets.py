"""The syncs as Dagster assets: one per sync declared in the audiences' YAML.

Asset ``syncs/<sync name>`` (group ``syncs``) depends on its audience's dbt asset, so a run of
the whole graph sends only after the audience was rebuilt and passed its checks: a failed
blocking check upstream (a dbt test, a Great Expectations suite, identity health) leaves the
sync unexecuted, and the UI names the check that stopped it.

A materialization is one engine run (orchestration/activation/engine.py), with its counts as
metadata. What a run ends in:

- succeeded, or partial (rows the destination refused are in ``activation.sync_failed_rows`` and
  go again next run, unless refused often enough to be parked): materialized.
- not configured (settings.not_configured, as ``tessera sync`` skips it): a destination none of
  whose settings is present (no ``TESSERA_<DEST>_*`` variable, nothing in the sync's options,
  and its settings have no defaults) is skipped, with the reason logged and recorded as an
  observation, so a project that declares a HubSpot sync can still build everything else
  before HubSpot is set up. A destination configured in part fails, naming the setting that is
  missing.
- aborted by a guard (an empty audience, too many removals): fails without retry; rerun with
  ``tessera sync --force`` if the removals are intended.
- failed: fails. When the destination could not be reached or was overloaded past the
  engine's own retries, Dagster retries the step by ``SYNC_RETRY_POLICY`` (rows already sent
  are not sent again); when it refused (credentials, a missing list), it does not.
"""

import os
from collections.abc import Callable, Mapping, Sequence

import dagster as dg

from orchestration.activation.config import SyncSpec, load_syncs
from orchestration.activation.destination import Destination
from orchestration.activation.destinations import registry
from orchestration.activation.engine import SyncResult, run_sync
from orchestration.activation.settings import not_configured
from orchestration.dbt_project import project_dir
from orchestration.resources import RunSettings, WarehouseResource

SYNC_GROUP = "syncs"
#: Retries of a failed sync step: the engine already retried each request with backoff, so
#: these cover what outlasted it (a destination down for minutes).
SYNC_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def sync_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([SYNC_GROUP, name])


def result_metadata(result: SyncResult) -> dict[str, object]:
    counts = result.plan.counts() if result.plan else {}
    return {
        "status": result.status,
        "run_id": result.run_id,
        **{f"planned_{name}": count for name, count in counts.items()},
        "succeeded": result.succeeded,
        "failed": result.failed,
        "requests": result.requests,
        "retries": result.retries,
        "throttled": result.rate_limited,
        "parked": result.parked,
    }


def build_sync_assets(
    audience_key: Callable[[str], dg.AssetKey],
    specs: Sequence[SyncSpec] | None = None,
    destinations: Mapping[str, type[Destination]] | None = None,
) -> list[dg.AssetsDefinition]:
    """One asset per sync; ``audience_key(model)`` is the audience's asset key. By default the
    project's declared syncs (checked without the warehouse) and registered destinations."""
    destinations = dict(destinations or registry())
    if specs is None:
        specs = load_syncs(project_dir(), destinations)
    return [_sync_asset(spec, audience_key(spec.audience), destinations) for spec in specs]


def _sync_asset(
    spec: SyncSpec, audience: dg.AssetKey, destinations: Mapping[str, type[Destination]]
) -> dg.AssetsDefinition:
    destination = destinations[spec.destination]

    @dg.asset(
        key=sync_key(spec.name),
        deps=[audience],
        group_name=SYNC_GROUP,
        kinds={spec.destination},
        retry_policy=SYNC_RETRY_POLICY,
        output_required=False,
        description=(
            f"{spec.mode} of {spec.audience} to {spec.destination}, key {spec.key} "
            f"(declared in {spec.source})."
        ),
        metadata={"mode": spec.mode, "destination": spec.destination, "key": spec.key},
    )
    def sync_asset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: RunSettings
    ):
        reason = not_configured(destination, spec.options, os.environ)
        if reason:
            context.log.warning(f"sync {spec.name} skipped: {reason}")
            yield dg.AssetObservation(asset_key=sync_key(spec.name), metadata={"skipped": reason})
            return
        result = run_sync(
            spec,
            warehouse.get(),
            destinations,
            dbt_vars=settings.vars(),
        )
        context.log.info(result.format())
        if result.status == "aborted":
            raise dg.Failure(
                description=f"sync {spec.name} aborted: {result.error}",
                metadata=result_metadata(result),
                allow_retries=False,
            )
        if result.status == "failed":
            # Retried when the destination was unreachable or overloaded, not when it refused.
            raise dg.Failure(
                description=f"sync {spec.name} failed: {result.error}",
                metadata=result_metadata(result),
                allow_retries=result.retryable,
            )
        yield dg.MaterializeResult(metadata=result_metadata(result))

    return sync_asset
