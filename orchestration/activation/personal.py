"""Which parts of a sync's records carry personal values in plain text, so the printed plan
masks them and the errors a run stores and prints are scrubbed of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestration.activation.config import SyncSpec
from orchestration.activation.destination import Destination, Record
from orchestration.privacy import mask, scrub, table_pii_columns


@dataclass(frozen=True)
class PersonalData:
    """What of a sync's records is personal (``privacy.mask`` hides it).

    A field is personal when its audience column is tagged ``pii`` in the audience model's YAML
    or its name looks personal (``privacy.table_pii_columns``), unless the destination receives
    it hashed. A field outside the current mapping (a remove carries what an earlier mapping
    sent) counts as personal unless hashed. The key is personal when its column is.
    """

    mapped: frozenset[str]
    personal: frozenset[str]
    hashed: frozenset[str]
    key: bool

    @classmethod
    def of(cls, spec: SyncSpec, destination: type[Destination] | None = None) -> PersonalData:
        columns = table_pii_columns(spec.audience, [spec.key, *spec.columns])
        return cls(
            mapped=frozenset(spec.fields),
            personal=frozenset(t for t, column in spec.fields.items() if column in columns),
            hashed=frozenset(destination.hashed_identifiers if destination else ()),
            key=spec.key in columns,
        )

    def is_plain(self, target: str) -> bool:
        """Whether destination field ``target`` carries a personal value in plain text."""
        return target not in self.hashed and (target in self.personal or target not in self.mapped)

    def masked(self, record: Record) -> tuple[str | None, dict[str, Any]]:
        """The record's key and fields with the plain personal values masked."""
        key = mask(record.key) if self.key else record.key
        fields = {t: mask(v) if self.is_plain(t) else v for t, v in record.fields.items()}
        return key, fields

    def scrub(self, text: str, records: Iterable[Record]) -> str:
        """``text`` with the records' plain personal values masked (an API echoing them)."""
        values = []
        for record in records:
            values += [v for t, v in record.fields.items() if self.is_plain(t)]
            if self.key:
                values.append(record.key)
        return scrub(text, values)
