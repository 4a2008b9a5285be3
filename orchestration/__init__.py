"""Tessera: a warehouse-native customer data platform on dbt and Dagster."""
