"""Meta Custom Audiences (customer file): hashed customer identifiers added to and removed from
one audience, in one upload session per run and operation.

Environment:

- ``TESSERA_META_TOKEN``: system-user access token with ``ads_management`` on the ad account.
- ``TESSERA_META_BASE_URL``: Graph API host, default ``https://graph.facebook.com``.
- ``TESSERA_META_TIMEOUT_SECONDS``: per-request timeout, default 60.

Options (the sync's YAML ``options``):

- ``audience_id``: the customer-file Custom Audience (required).
- ``ad_account_id``: its ad account (``act_`` optional); checked by ``check_connection``.
- ``api_version``: Graph API version, default ``v23.0``.
- ``columns``: the fields sent, in order; default all of them: ``email``, ``phone``,
  ``first_name``, ``last_name``, ``zip``, ``city``, ``state``, ``country``, ``gender``,
  ``external_id`` (Meta's EMAIL, PHONE, FN, LN, ZIP, CT, ST, COUNTRY, GEN, EXTERN_ID).

Fields: map audience columns to those names in the sync's ``fields`` (``{email: email, phone:
phone}``), the identifier kinds Tessera's hashing knows; Google takes the same names. Every field
but ``external_id`` reaches ``write`` normalised with Meta's rules and SHA-256 hashed by the
engine; a missing value is sent as "".

Sessions: Meta groups the requests of one upload in a session (``session_id`` chosen by the
advertiser, ``batch_seq`` from 1, ``last_batch_flag`` on the last one). Each run opens one
session per endpoint it uses (removals, additions, replace), with an id derived from the run
id, and sends one request at a time (``max_concurrency`` 1) so the sequence numbers arrive in
order. A request answered with an error keeps its sequence number for the retry, and Meta does
not apply a sequence number twice, so a retried timeout is harmless; the outcomes of its rows
then come from the session's cumulative invalid-entry counter, as the retry's answer cannot
name them. The run's last batch carries ``last_batch_flag``: it is the one that brings the
records answered to the run's ``total_records``. Meta refuses a request without rows, so a
session whose end cannot be known (the removals before additions, or a run whose failed rows the
engine gave up on) is not closed explicitly; Meta ends it 90 minutes after its first batch,
keeping every batch it took.

Mirror: a normal mirror run sends the diff, adds to ``/users`` and removes with DELETE on
``/users``. A changed record is added with its new identifiers; the old ones, which Meta cannot
be told apart from other people's, leave on the next full resync. A full resync of a mirror
(``tessera sync --full-resync``: every member sent as an add) goes to ``/usersreplace`` in one
session instead: the audience becomes exactly the records sent, without resetting ad-set
learning the way removing everyone would. Meta ends a replace session 90 minutes after its
first batch keeping what it took, so a replace of an audience larger than a run can upload in
that time leaves it short; the members it missed are sent again by the next run.

Report (``platform_report``, stored in ``activation.sync_platform_reports``): Meta's answers carry
the session's cumulative ``num_received`` and ``num_invalid_entries``; the run's report is their
last values summed over every session the run opened (removals, additions, replace). This API
reports no match rate.

Answers: 200 -> each row succeeded, except rows whose values Meta lists in
``invalid_entry_samples`` (failed with its reason; when Meta counts more invalid entries than it
names, every row it did not name fails too, to be sent again next run: adding or removing a
member twice changes nothing); HTTP 429, or error codes 4, 17, 32, 613 and
80003 (throttling) -> RateLimited (Retry-After, else the ``estimated_time_to_regain_access`` of
the usage headers, else the engine's backoff); 5xx, a timeout, error codes 1 and 2, and 2650
subcodes 1870145 (update in progress) and 1870148 -> TransientError; codes 190 (token), 200, 10
and 294 (permission), 100 with subcode 33 (no such audience), 2650 with any other subcode
(session timed out, finished, out of order, audience too large) and 401/403/404 ->
PermanentError; code 100 (a plain-text or malformed value) and other 400s -> BatchRejected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import requests
from pydantic import field_validator

from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    PlatformReport,
    RateLimited,
    Record,
    RecordOutcome,
    RunContext,
    TransientError,
    WriteResult,
)
from orchestration.activation.destinations._http import (
    HttpDestination,
    HttpDestinationConfig,
    int_or_none,
    json_or_none,
    raise_for_status,
    retry_after,
)

#: Destination field -> Meta customer-file key.
META_KEYS = {
    "email": "EMAIL",
    "phone": "PHONE",
    "first_name": "FN",
    "last_name": "LN",
    "zip": "ZIP",
    "city": "CT",
    "state": "ST",
    "country": "COUNTRY",
    "gender": "GEN",
    "external_id": "EXTERN_ID",
}
#: Fields the engine normalises and hashes (field -> identifier kind); the advertiser's own id
#: is sent as it is.
HASHED_FIELDS = {field: field for field in META_KEYS if field != "external_id"}
DEFAULT_SCHEMA = tuple(META_KEYS)
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80003})
PERMISSION_CODES = frozenset({10, 190, 200, 294})
TRANSIENT_CODES = frozenset({1, 2})
SESSION_ERROR = 2650
TRANSIENT_SESSION_SUBCODES = frozenset({1870145, 1870148})
SESSION_FINISHED = 1870159

Endpoint = Literal["users", "usersreplace", "remove"]


class MetaConfig(HttpDestinationConfig):
    env_name: ClassVar[str] = "META"

    base_url: str = "https://graph.facebook.com"
    timeout_seconds: float = 60.0
    audience_id: str
    ad_account_id: str | None = None
    api_version: str = "v23.0"
    columns: tuple[str, ...] = DEFAULT_SCHEMA

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [column for column in columns if column not in DEFAULT_SCHEMA]
        if unknown or not columns or len(set(columns)) != len(columns):
            raise ValueError(
                f"columns must be distinct names of {', '.join(DEFAULT_SCHEMA)}; got {unknown}"
            )
        return columns

    def graph(self, path: str) -> str:
        return self.url(f"{self.api_version}/{path.lstrip('/')}")


class _SessionFinished(PermanentError):
    """Meta's 2650/1870159: the session already ended (its last batch was taken)."""


@dataclass
class _Session:
    session_id: int
    total: int
    next_seq: int = 1
    #: Meta's cumulative ``num_received`` and ``num_invalid_entries`` in the last answer.
    received_seen: int = 0
    invalid_seen: int = 0
    #: Whether Meta answered any request of the session.
    answered: bool = False
    #: A request with this batch_seq failed in a way that may have reached Meta.
    uncertain_seq: int | None = None
    closed: bool = False


class Meta(HttpDestination):
    name: ClassVar[str] = "meta"
    max_batch_size: ClassVar[int] = 10_000
    max_concurrency: ClassVar[int] = 1
    consent_purpose: ClassVar[str | None] = "advertising"
    supported_modes: ClassVar[frozenset[str]] = frozenset({"upsert", "insert", "mirror"})
    hashed_identifiers: ClassVar[dict[str, str]] = HASHED_FIELDS
    normaliser: ClassVar[str | None] = "meta"
    replaces_on_full_resync: ClassVar[bool] = True
    config_class: ClassVar[type[MetaConfig]] = MetaConfig

    config: MetaConfig

    def __init__(self, config: MetaConfig) -> None:
        super().__init__(config)
        self._run: RunContext | None = None
        self._sessions: dict[Endpoint, _Session] = {}
        #: Every session the run opened, the finished ones too: the run's report sums them.
        self._run_sessions: list[_Session] = []
        #: Records of the run that will not be sent again: answered, or refused alone.
        self._done = 0
        self._opened = 0

    def check_connection(self) -> None:
        what = "reading the audience"
        response = self._request(
            "GET",
            self.config.audience_id,
            what,
            accept=range(400, 600),
            params={"fields": "id,name,operation_status"},
        )
        if response.status_code < 400:
            return
        code, _, message = _graph_error(response)
        if code == 190 or response.status_code == 401:
            raise PermanentError(
                f"Meta refused the token: check {MetaConfig.env_var('token')} ({message})"
            )
        if code == 100 or response.status_code == 404:
            raise PermanentError(
                f"Meta audience {self.config.audience_id} (option audience_id) not found or "
                f"not readable with this token: {message}"
            )
        self.raise_for(response, what)

    def start(self, run: RunContext) -> None:
        self._run = run
        self._sessions = {}
        self._run_sessions = []
        self._done = 0

    @property
    def replacing(self) -> bool:
        run = self._run
        return run is not None and run.mode == "mirror" and run.full_resync

    def write(self, batch: Sequence[Record]) -> WriteResult:
        remove = batch[0].operation == "remove"
        endpoint: Endpoint = "remove" if remove else ("usersreplace" if self.replacing else "users")
        rows, outcomes = self._rows(batch)
        total = self._run.total_records if self._run else 0
        last = self._done + len(batch) >= total
        if rows:
            records = [record for record in batch if record.key not in outcomes]
            try:
                outcomes.update(self._upload(endpoint, records, rows, last))
            except BatchRejected:
                if len(batch) == 1:  # the engine records it as failed and moves on
                    self._done += 1
                raise
        self._done += len(batch)
        return WriteResult([outcomes[record.key] for record in batch])

    def _rows(self, batch: Sequence[Record]) -> tuple[list[list[str]], dict[str, RecordOutcome]]:
        rows: list[list[str]] = []
        skipped: dict[str, RecordOutcome] = {}
        for record in batch:
            row = [
                "" if record.fields.get(c) is None else str(record.fields[c]) for c in self.schema
            ]
            if any(row):
                rows.append(row)
            else:
                skipped[record.key] = RecordOutcome(
                    record.key, False, error=f"no identifier among {', '.join(self.schema)}"
                )
        return rows, skipped

    @property
    def schema(self) -> tuple[str, ...]:
        return self.config.columns

    def _upload(
        self, endpoint: Endpoint, records: Sequence[Record], rows: list[list[str]], last: bool
    ) -> dict[str, RecordOutcome]:
        session = self._session_for(endpoint)
        seq = session.next_seq
        try:
            answer = self._post(endpoint, session, rows, last=last)
        except TransientError:
            session.uncertain_seq = seq
            raise
        except _SessionFinished:
            if session.uncertain_seq != seq or not last:
                raise
            # The run's last batch landed and closed the session before its answer arrived:
            # what Meta made of its rows is lost with the answer, so they go again next run.
            session.closed = True
            return {
                record.key: RecordOutcome(
                    record.key,
                    False,
                    error="Meta took this batch but its answer was lost",
                    transient=True,
                )
                for record in records
            }
        counted = int_or_none(answer.get("num_invalid_entries")) or 0
        invalid = max(counted - session.invalid_seen, 0)
        session.invalid_seen = max(counted, session.invalid_seen)
        received = int_or_none(answer.get("num_received")) or 0
        session.received_seen = max(received, session.received_seen)
        session.answered = True
        if session.uncertain_seq == seq:
            # The first attempt may have landed (a timeout after Meta took it), and Meta does
            # not apply a batch_seq twice: then this answer's samples describe rows that were
            # not applied. The session's cumulative counter still says whether the batch had
            # invalid rows; if so, every row goes again next run, which is harmless: adding or
            # removing a member twice changes nothing.
            error = (
                f"{invalid} rows of this batch were invalid; Meta's answer to a retry names none"
            )
            return {
                record.key: RecordOutcome(
                    record.key, not invalid, error=error if invalid else None, transient=True
                )
                for record in records
            }
        return _outcomes(records, rows, answer, invalid)

    def _session_for(self, endpoint: Endpoint) -> _Session:
        session = self._sessions.get(endpoint)
        if session is None or session.closed:
            run = self._run or RunContext("adhoc", "adhoc", "upsert", 0)
            # A session that ended (its flagged batch was taken early, e.g. while the engine
            # resent a killed run's batches before it knew the run's total) is followed by a
            # new one with a new id: Meta refuses batches to a finished session.
            self._opened += 1
            seed = f"{run.sync_name}:{run.run_id}:{endpoint}:{self._opened}"
            # A positive int64, unique to this run, endpoint and session.
            session_id = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8]) >> 1
            session = _Session(session_id=session_id or 1, total=run.total_records)
            self._sessions[endpoint] = session
            self._run_sessions.append(session)
        return session

    def platform_report(self) -> PlatformReport | None:
        """``num_received`` and ``num_invalid_entries`` summed over the run's sessions (Meta's
        counters are cumulative per session: each session's last answer holds its total)."""
        answered = [session for session in self._run_sessions if session.answered]
        if not answered:
            return None
        received = sum(session.received_seen for session in answered)
        invalid = sum(session.invalid_seen for session in answered)
        return PlatformReport(
            received=received,
            invalid=invalid,
            detail=f"num_received={received} num_invalid_entries={invalid}",
        )

    def _post(
        self, endpoint: Endpoint, session: _Session, rows: list[list[str]], last: bool
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "payload": json.dumps(
                {"schema": [META_KEYS[field] for field in self.schema], "data": rows}
            ),
            "session": json.dumps(
                {
                    "session_id": session.session_id,
                    "batch_seq": session.next_seq,
                    "last_batch_flag": last,
                    "estimated_num_total": session.total,
                }
            ),
        }
        path = f"{self.config.audience_id}/{'users' if endpoint == 'remove' else endpoint}"
        method = "DELETE" if endpoint == "remove" else "POST"
        what = f"{'removing from' if endpoint == 'remove' else 'uploading to'} the audience"
        response = self._request(method, path, what, data=params)
        session.next_seq += 1
        session.closed = last
        body = json_or_none(response)
        return body if isinstance(body, dict) else {}

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        return self.request(method, self.config.graph(path), what, **kwargs)

    def raise_for(self, response: requests.Response, what: str) -> None:
        """The Graph API's ``error`` code and subcode say whose fault it is."""
        code, subcode, message = _graph_error(response)
        detail = f"Meta {what}: HTTP {response.status_code}, code {code}/{subcode}: {message}"
        if response.status_code == 429 or code in THROTTLING_CODES:
            wait = retry_after(response)
            raise RateLimited(detail, wait if wait is not None else _regain_access(response))
        if response.status_code >= 500 or code in TRANSIENT_CODES:
            raise TransientError(detail)
        if code == SESSION_ERROR:
            if subcode in TRANSIENT_SESSION_SUBCODES:
                raise TransientError(detail)
            if subcode == SESSION_FINISHED:
                raise _SessionFinished(detail)
            raise PermanentError(detail)
        if code in PERMISSION_CODES or (code == 100 and subcode == 33):
            raise PermanentError(detail)
        if code == 100 and response.status_code == 400:
            raise BatchRejected(detail)
        raise_for_status(response, f"Meta {what}", message)


def _outcomes(
    records: Sequence[Record], rows: list[list[str]], answer: dict[str, Any], invalid_count: int
) -> dict[str, RecordOutcome]:
    """Every row succeeded except those whose values Meta quotes as invalid samples, and, when
    Meta counted more invalid rows than it quoted, every row it did not quote."""
    samples = answer.get("invalid_entry_samples") or {}
    invalid: dict[str, str] = {}
    if isinstance(samples, dict):
        invalid = {str(value): str(reason) for value, reason in samples.items()}
    elif isinstance(samples, list):
        invalid = {str(value): "invalid entry" for value in samples}
    outcomes = {}
    for record, row in zip(records, rows, strict=True):
        reasons = [f"{value}: {invalid[value]}" for value in row if value and value in invalid]
        if reasons:
            outcomes[record.key] = RecordOutcome(
                record.key, False, error="Meta rejected " + "; ".join(reasons)
            )
    unnamed = invalid_count - len(outcomes)
    for record in records:
        if record.key in outcomes:
            continue
        if unnamed > 0:
            outcomes[record.key] = RecordOutcome(
                record.key,
                False,
                error=f"Meta counted {invalid_count} invalid entries in this batch but named "
                f"only {invalid_count - unnamed}; sent again next run",
                transient=True,
            )
        else:
            outcomes[record.key] = RecordOutcome(record.key, True)
    return outcomes


def _graph_error(response: requests.Response) -> tuple[int | None, int | None, str]:
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, response.reason or ""
    return (
        int_or_none(error.get("code")),
        int_or_none(error.get("error_subcode")),
        str(error.get("error_user_msg") or error.get("message") or ""),
    )


def _regain_access(response: requests.Response) -> float | None:
    """Minutes until access returns, from Meta's business use case usage header, as seconds."""
    header = response.headers.get("X-Business-Use-Case-Usage")
    if not header:
        return None
    try:
        usage = json.loads(header)
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access", 0)
        for entries in (usage.values() if isinstance(usage, dict) else [])
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
    ]
    longest = max((float(m) for m in minutes if isinstance(m, (int, float))), default=0.0)
    return longest * 60 if longest > 0 else None
