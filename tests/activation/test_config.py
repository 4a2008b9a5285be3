"""Sync declarations in models/audiences/*.yml: what loads, and errors that name the file and
the field."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import ClassVar

import pytest

from orchestration.activation.config import SyncConfigError, load_syncs
from orchestration.activation.destinations.file import FileDestination
from orchestration.activation.destinations.table import TableDestination
from orchestration.activation.destinations.webhook import WebhookDestination
from tests.activation.sync_support import MemoryDestination

SYNCS = "models[0].config.meta.tessera.syncs"


class AddOnly(MemoryDestination):
    name: ClassVar[str] = "add_only"
    supported_modes: ClassVar[frozenset[str]] = frozenset({"upsert", "insert"})
    consent_purpose: ClassVar[str | None] = "advertising"


def _registry():
    return {
        destination.name: destination
        for destination in (
            FileDestination,
            TableDestination,
            WebhookDestination,
            MemoryDestination,
            AddOnly,
        )
    }


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "models" / "audiences"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return tmp_path


def _audience(syncs: str, model: str = "audience_vip") -> str:
    """An audience's YAML declaring ``syncs`` (a YAML list, as written in the file)."""
    listed = textwrap.indent(textwrap.dedent(syncs), " " * 14)
    return (
        f"models:\n  - name: {model}\n    config:\n      meta:\n        tessera:\n"
        f"          syncs:\n{listed}"
    )


def _problems(tmp_path, files, **options) -> list[str]:
    with pytest.raises(SyncConfigError) as raised:
        load_syncs(_project(tmp_path, files), _registry(), **options)
    return raised.value.problems


def test_a_declared_sync_loads_with_its_audience_and_defaults(tmp_path):
    project = _project(
        tmp_path,
        {
            "audience_vip.yml": _audience(
                """\
                - name: vip_file
                  destination: file
                  mode: mirror
                  key: customer_id
                  fields: {email: email}
                  options: {format: parquet}
                """
            )
        },
    )

    [sync] = load_syncs(project, _registry())

    assert (sync.name, sync.audience, sync.destination, sync.mode) == (
        "vip_file",
        "audience_vip",
        "file",
        "mirror",
    )
    assert (sync.delete, dict(sync.options), sync.removes) == ("none", {"format": "parquet"}, True)
    assert sync.source == "models/audiences/audience_vip.yml"


def test_a_misspelt_mode_is_named_by_file_and_field_path(tmp_path):
    problems = _problems(
        tmp_path,
        {
            "x.yml": _audience(
                """\
                - {name: a, destination: file, mode: upsert, key: customer_id, fields: {e: email}}
                - {name: b, destination: file, mode: mirorr, key: customer_id, fields: {e: email}}
                """
            )
        },
    )

    assert problems == [
        f"models/audiences/x.yml: {SYNCS}[1].mode: 'mirorr' is not one of upsert, update, "
        "insert, mirror"
    ]


def test_every_problem_of_every_file_is_reported_at_once(tmp_path):
    problems = _problems(
        tmp_path,
        {
            "a.yml": _audience(
                """\
                - name: a
                  destination: nowhere
                  mode: upsert
                  key: customer_id
                  fields: {}
                  delete: sometimes
                  colour: blue
                """
            ),
            "b.yml": _audience("- {name: b, mode: update}", model="audience_b"),
        },
    )

    assert problems == [
        f"models/audiences/a.yml: {SYNCS}[0].colour: unknown setting; expected one of name, "
        "destination, mode, key, fields, delete, options",
        f"models/audiences/b.yml: {SYNCS}[0].destination: required",
        f"models/audiences/b.yml: {SYNCS}[0].key: required",
        f"models/audiences/b.yml: {SYNCS}[0].fields: required",
    ]


def test_a_wrong_destination_delete_and_fields_are_each_named(tmp_path):
    problems = _problems(
        tmp_path,
        {
            "a.yml": _audience(
                """\
                - {name: a, destination: nowhere, mode: upsert, key: customer_id, fields: {},
                   delete: sometimes}
                """
            )
        },
    )

    assert problems == [
        f"models/audiences/a.yml: {SYNCS}[0].destination: 'nowhere' is not one of add_only, "
        "file, memory, table, webhook",
        f"models/audiences/a.yml: {SYNCS}[0].delete: 'sometimes' is not one of none, remove",
        f"models/audiences/a.yml: {SYNCS}[0].fields: expected a mapping of destination field: "
        "audience column",
    ]


def test_a_mode_or_removal_the_destination_cannot_do_is_refused(tmp_path):
    problems = _problems(
        tmp_path,
        {
            "a.yml": _audience(
                """\
                - {name: a, destination: add_only, mode: mirror, key: customer_id, fields: {e: e}}
                - {name: b, destination: add_only, mode: upsert, key: customer_id, fields: {e: e},
                   delete: remove}
                """
            )
        },
    )

    assert problems == [
        f"models/audiences/a.yml: {SYNCS}[0].mode: destination 'add_only' does not support "
        "'mirror' (it supports upsert, insert)",
        f"models/audiences/a.yml: {SYNCS}[1].delete: destination 'add_only' cannot remove "
        "records; use 'none'",
    ]


def test_a_sync_name_used_twice_names_both_files(tmp_path):
    sync = "- {name: vip, destination: file, mode: upsert, key: customer_id, fields: {e: e}}"
    problems = _problems(
        tmp_path, {"a.yml": _audience(sync), "b.yml": _audience(sync, model="audience_b")}
    )

    assert problems == [
        "models/audiences/b.yml: sync name 'vip' is already used in models/audiences/a.yml"
    ]


def test_secrets_and_unknown_settings_in_options_are_refused(tmp_path):
    problems = _problems(
        tmp_path,
        {
            "a.yml": _audience(
                """\
                - name: hook
                  destination: webhook
                  mode: upsert
                  key: customer_id
                  fields: {e: e}
                  options: {secret: hunter2, colour: blue}
                """
            )
        },
    )

    assert problems == [
        f"models/audiences/a.yml: {SYNCS}[0].options.secret: a secret; set it in environment "
        "variable TESSERA_WEBHOOK_SECRET",
        f"models/audiences/a.yml: {SYNCS}[0].options.colour: destination 'webhook' has no such "
        "setting (settings: timeout_seconds, url, secret)",
    ]


def test_columns_are_checked_against_the_audience_table_when_the_warehouse_is_known(tmp_path):
    files = {
        "a.yml": _audience(
            """\
            - name: ads
              destination: add_only
              mode: upsert
              key: customer_ref
              fields: {email: email, phone: phone_number}
            """
        ),
        "b.yml": _audience(
            "- {name: gone, destination: file, mode: upsert, key: customer_id, fields: {e: e}}",
            model="audience_missing",
        ),
    }

    problems = _problems(
        tmp_path, files, audience_columns={"audience_vip": ["customer_id", "email", "phone"]}
    )

    assert problems == [
        f"models/audiences/a.yml: {SYNCS}[0].key: 'customer_ref' is not a column of audience_vip",
        f"models/audiences/a.yml: {SYNCS}[0].fields.phone: 'phone_number' is not a column of "
        "audience_vip",
        f"models/audiences/a.yml: {SYNCS}[0].destination: 'add_only' sends only customers who "
        "consented to 'advertising', but audience_vip has no column has_consent_advertising",
        f"models/audiences/b.yml: {SYNCS}[0]: audience table audiences.audience_missing does not "
        "exist; build it (dbt build) before syncing",
    ]


def test_a_file_that_is_not_yaml_is_named(tmp_path):
    problems = _problems(tmp_path, {"bad.yml": "models: [\n"})

    assert len(problems) == 1
    assert problems[0].startswith("models/audiences/bad.yml: not valid YAML")
