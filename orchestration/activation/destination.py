"""What a destination is: the small surface every connector implements.

A destination knows its API and nothing else. The sync engine (orchestration.activation: plan,
sender, engine) owns everything shared: diffing against the last successful send, batching to
``max_batch_size``, bounded concurrency, retries with backoff and jitter, honouring 429 and
Retry-After, splitting a rejected batch to isolate bad rows, consent filtering, identifier
normalisation and hashing (orchestration.activation.hashing), and logging every row outcome.

A destination's ``write`` sends one batch and reports each record's outcome, or raises one of the
errors below when the whole request failed; ``check_connection`` raises them too. It never
retries or sleeps itself: the engine retries both, the check like any request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Operation = Literal["add", "change", "remove"]
Mode = Literal["upsert", "update", "insert", "mirror"]


@dataclass(frozen=True)
class Record:
    """One row to send: the sync key's value, what to do, and the mapped destination fields.

    ``fields`` hold destination field names (after the sync's field mapping). Fields that the
    destination lists in ``hashed_identifiers`` arrive normalised and SHA-256 hashed (lowercase
    hex) by the engine. A ``remove`` carries the fields last sent for the key.
    """

    key: str
    operation: Operation
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record. A failure is the destination refusing the record, unless
    ``transient``: its answer for the record was lost or it did not process it, so the failure
    does not count toward parking the row (engine: ``tessera_sync_max_row_attempts``)."""

    key: str
    succeeded: bool
    destination_id: str | None = None
    error: str | None = None
    transient: bool = False


@dataclass(frozen=True)
class WriteResult:
    """Per-record outcomes of one accepted request (HubSpot 207, Salesforce per-row results)."""

    outcomes: Sequence[RecordOutcome]

    @property
    def succeeded(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if outcome.succeeded]

    @property
    def failed(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.succeeded]

    @classmethod
    def all_succeeded(cls, batch: Sequence[Record]) -> WriteResult:
        return cls([RecordOutcome(key=record.key, succeeded=True) for record in batch])


@dataclass(frozen=True)
class PlatformReport:
    """What a platform says it made of a run's uploads, in its own figures (None: not reported).

    ``received`` and ``invalid`` count the rows or members it says it received and found
    invalid; ``match_rate_low`` and ``match_rate_high`` bound the match rate it reports, as
    fractions (0..1); ``detail`` is the platform's own words for the figure (an enum, counter
    names), never a personal value. Stored in ``activation.sync_platform_reports``.
    """

    received: int | None = None
    invalid: int | None = None
    match_rate_low: float | None = None
    match_rate_high: float | None = None
    detail: str | None = None


class DestinationError(RuntimeError):
    """The whole request failed; subclasses tell the engine what to do about it."""


class RateLimited(DestinationError):
    """429 or the API's own throttling answer: wait ``retry_after`` seconds (None: engine's
    backoff) and send the same batch again, without spending the retry budget."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(DestinationError):
    """5xx, timeout, connection reset: retry the same batch with backoff, within the budget."""


class BatchRejected(DestinationError):
    """The API refused the whole batch because of its content (a 400 naming a bad row, an
    all-or-nothing endpoint): the engine splits the batch in halves until the bad rows are
    isolated, and records each of them as failed with this message."""


class PermanentError(DestinationError):
    """Nothing sent can succeed (bad credentials, missing list, forbidden): the run stops, and
    its unsent rows are kept to retry on the next run."""


class DestinationConfig(BaseModel):
    """Connection settings of a destination; subclasses add fields (secrets as SecretStr).

    Read from ``TESSERA_<DESTINATION>_<FIELD>`` environment variables and from the ``options``
    of the sync's YAML declaration (non-secret settings such as a list id): settings.py."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Settings without which nothing can be tried; a missing one is reported as the
    #: environment variable to set.
    required_settings: ClassVar[frozenset[str]] = frozenset()


@dataclass
class RunContext:
    """What a destination may need to know about the run it is part of."""

    sync_name: str
    run_id: str
    mode: Mode
    total_records: int
    extra: dict[str, Any] = field(default_factory=dict)
    #: A full resync: every member is sent as an add, whatever the destination last got, and
    #: nothing is removed (except erased customers), unless the destination
    #: ``replaces_on_full_resync``.
    full_resync: bool = False


class Destination(ABC):
    """One destination type. Subclasses set the class attributes and implement ``write``."""

    #: Name used in YAML (``destination: hubspot``) and in environment variable names.
    name: ClassVar[str]
    #: Most records one request may carry (the API's documented limit).
    max_batch_size: ClassVar[int]
    #: Requests the engine may have in flight at once for one sync.
    max_concurrency: ClassVar[int] = 4
    #: Consent purpose a customer must have granted to be sent here (None: no consent needed).
    consent_purpose: ClassVar[str | None] = None
    #: Modes this destination supports.
    supported_modes: ClassVar[frozenset[str]] = frozenset({"upsert", "update", "insert", "mirror"})
    #: Destination field -> identifier kind (email, phone, first_name, last_name, ...) that the
    #: engine normalises with ``normaliser``'s rules and hashes before ``write`` sees it.
    hashed_identifiers: ClassVar[Mapping[str, str]] = {}
    #: Normalisation rule set for hashed identifiers (``meta``, ``google``), None if no hashing.
    normaliser: ClassVar[str | None] = None
    #: On a full resync of a mirror, the adds replace the destination's whole membership (Meta's
    #: ``usersreplace``): records the run does not send are gone when it ends, so the engine
    #: forgets the members who left instead of removing them one by one.
    replaces_on_full_resync: ClassVar[bool] = False
    #: Pydantic model of this destination's settings.
    config_class: ClassVar[type[DestinationConfig]] = DestinationConfig

    def __init__(self, config: DestinationConfig) -> None:
        self.config = config

    def check_connection(self) -> None:  # noqa: B027 - optional for local destinations
        """Raise PermanentError naming the setting to fix if the destination is unreachable."""

    def start(self, run: RunContext) -> None:  # noqa: B027 - most destinations need no session
        """Called once before the first batch of a run (open a Meta session, a Bulk job)."""

    @abstractmethod
    def write(self, batch: Sequence[Record]) -> WriteResult:
        """Send one batch (at most ``max_batch_size`` records, one operation kind)."""

    def platform_report(self) -> PlatformReport | None:
        """What the platform reports about this run's uploads (Meta's received and invalid
        counts, Google's match-rate range), or None when it reports nothing.

        Called once after the last batch of a run that sent something, before ``finish``, and
        not after an interrupt. It asks at most once, without waiting for the platform to
        finish processing, and never raises: a platform that cannot say is None.
        """
        return None

    def finish(self, succeeded: bool) -> None:  # noqa: B027 - most destinations need no session
        """Called once after the last batch (close the session, complete the job)."""


class Batch(list[Record]):
    """The records of one request, with the id each change is delivered under.

    A change keeps its id when the engine retries its request, splits it, resends it after a
    killed run left its outcome unrecorded, or sends it again in a later run after it failed, so
    ``delivery_id(record)`` names one change however often it travels: a destination whose API
    takes record ids or idempotency keys sends it, and the API applies each change once.
    """

    def __init__(
        self,
        records: Sequence[Record] = (),
        batch_id: str | None = None,
        change_ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(records)
        self.batch_id = batch_id
        #: Record key -> id of the change it carries, when not ``batch_id``.
        self.change_ids = dict(change_ids or {})

    def delivery_id(self, record: Record) -> str:
        """``<change id>:<key>``: stable for one change of one record."""
        change = self.change_ids.get(record.key) or self.batch_id
        return f"{change}:{record.key}" if change else record.key
