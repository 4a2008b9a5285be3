"""Fuzzy match suggestions as a Dagster asset, when var tessera_identity_fuzzy_matching is on.

Downstream of the customer marts (golden records) and the erasures; its table lives in schema
identity. Auto-applied pairs become overrides the next run's identity models read.
"""

from collections.abc import Callable

import dagster as dg

from orchestration.identity.matching import SUGGESTIONS_TABLE, run_matching
from orchestration.resources import RunSettings, WarehouseResource

SUGGESTIONS_KEY = dg.AssetKey(["identity", SUGGESTIONS_TABLE])


def build_matching_asset(model_key: Callable[[str], dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=SUGGESTIONS_KEY,
        deps=[model_key("customers"), model_key("customer_erasures")],
        group_name="identity",
        description=(
            "Pairs of customers likely to be one person by name, email and phone similarity "
            "(Splink), with the comparisons behind each score; auto-applied as always_link "
            "overrides at var tessera_identity_fuzzy_auto_apply."
        ),
    )
    def identity_match_suggestions(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: RunSettings
    ) -> dg.MaterializeResult:
        run = run_matching(warehouse.get(), settings.config(), progress=context.log.info)
        context.log.info(run.describe())
        return dg.MaterializeResult(
            metadata={
                "customers": run.customers,
                "suggestions": run.suggestions,
                "auto_applied": run.auto_applied,
                "auto_apply_threshold": run.threshold,
                "seconds": round(run.seconds, 2),
            }
        )

    return identity_match_suggestions
