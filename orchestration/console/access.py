"""Who may use the console, what each role sees, and the log of whose profile was looked at.

Users come from a YAML file (``TESSERA_CONSOLE_USERS_FILE``, default
``.tessera/console/users.yml``) written by ``tessera console add-user``::

    users:
      - {name: ana, role: admin, password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."}

or from the environment, ``TESSERA_CONSOLE_USERS`` holding ``name:role:hash`` entries separated
by whitespace (a deployment's secret store); both are read, and a name in both is refused.
Passwords are kept only as Argon2id hashes (argon2-cffi's defaults).

Roles: ``viewer`` sees personal values masked exactly as the sync logs mask them
(``privacy.mask``: ``a***@mail.com#1f3a9c``), ``admin`` sees them in full and the access log.

Every profile shown is recorded in the access log: who, with which role, when, which customer
and which page. It lives in the console's own DuckDB file (``<console dir>/access_log.duckdb``),
because the console never writes the warehouse (a snapshot on DuckDB, a SELECT-only role on
Postgres); ``tessera console access-log`` prints it and admins see it on the Access log page.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from orchestration.privacy import mask

ROLES = ("viewer", "admin")
CONSOLE_DIR_ENV = "TESSERA_CONSOLE_DIR"
USERS_FILE_ENV = "TESSERA_CONSOLE_USERS_FILE"
USERS_ENV = "TESSERA_CONSOLE_USERS"
SECRET_ENV = "TESSERA_CONSOLE_SECRET"
DEFAULT_CONSOLE_DIR = ".tessera/console"
_HASHER = PasswordHasher()
# Checked when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class AccessError(ValueError):
    """A users file, user or role is not valid; the message names it."""


def console_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(CONSOLE_DIR_ENV) or DEFAULT_CONSOLE_DIR)


def users_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(USERS_FILE_ENV) or console_dir(env) / "users.yml")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _user(name: Any, role: Any, password_hash: Any, where: str) -> User:
    if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
        raise AccessError(f"{where}: a user needs a name without spaces, got {name!r}")
    if role not in ROLES:
        raise AccessError(f"{where}: user {name} has role {role!r}; roles: {', '.join(ROLES)}")
    if not isinstance(password_hash, str) or not password_hash.startswith("$argon2"):
        raise AccessError(
            f"{where}: user {name} needs an Argon2 password_hash "
            "(`tessera console add-user` writes one)"
        )
    return User(name, role, password_hash)


def load_users(env: Mapping[str, str] | None = None) -> dict[str, User]:
    """The console's users from the users file and ``TESSERA_CONSOLE_USERS``."""
    env = os.environ if env is None else env
    users: dict[str, User] = {}
    path = users_file(env)
    if path.is_file():
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = document.get("users") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise AccessError(f"{path}: expected a mapping with a list `users`")
        for entry in entries:
            if not isinstance(entry, dict):
                raise AccessError(f"{path}: each user is a mapping, got {entry!r}")
            user = _user(
                entry.get("name"), entry.get("role"), entry.get("password_hash"), str(path)
            )
            if user.name in users:
                raise AccessError(f"{path}: user {user.name} is listed twice")
            users[user.name] = user
    for entry in (env.get(USERS_ENV) or "").split():
        name, _, rest = entry.partition(":")
        role, _, password_hash = rest.partition(":")
        user = _user(name, role, password_hash, USERS_ENV)
        if user.name in users:
            raise AccessError(f"{USERS_ENV}: user {user.name} is also in {path}")
        users[user.name] = user
    return users


def add_user(path: Path, name: str, role: str, password: str) -> User:
    """Add ``name`` to the users file (or replace their role and password); returns the user."""
    if len(password) < 8:
        raise AccessError("a console password needs at least 8 characters")
    user = _user(name, role, _HASHER.hash(password), str(path))
    document: dict[str, Any] = {"users": []}
    if path.is_file():
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {"users": []}
    kept = [u for u in document.get("users") or [] if u.get("name") != name]
    kept.append({"name": user.name, "role": user.role, "password_hash": user.password_hash})
    _write_private(path, yaml.safe_dump({"users": kept}, sort_keys=False))
    return user


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.chmod(0o600)
    os.replace(partial, path)


def authenticate(users: Mapping[str, User], name: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else None (as slow for an unknown name)."""
    user = users.get(name)
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return user


def session_secret(env: Mapping[str, str] | None = None) -> str:
    """The key session cookies are signed with: ``TESSERA_CONSOLE_SECRET``, else one generated
    once into ``<console dir>/secret`` (mode 600)."""
    env = os.environ if env is None else env
    if env.get(SECRET_ENV):
        return env[SECRET_ENV]
    path = console_dir(env) / "secret"
    if not path.is_file():
        _write_private(path, secrets.token_urlsafe(48))
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Masker:
    """What one role sees of a personal value."""

    full: bool

    def __call__(self, value: Any) -> Any:
        return value if self.full or value is None else mask(value)


class AccessLog:
    """The console's log of profile lookups, in its own DuckDB file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._con = duckdb.connect(str(path))
        self._con.execute(
            "create table if not exists access_log (accessed_at timestamp not null, "
            "username varchar not null, role varchar not null, customer_id varchar, "
            "page varchar not null)"
        )

    def record(self, user: User, customer_id: str | None, page: str) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._lock:
            self._con.execute(
                "insert into access_log values (?, ?, ?, ?, ?)",
                [now, user.name, user.role, customer_id, page],
            )

    def recent(self, limit: int = 200) -> Sequence[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(
                "select accessed_at, username, role, customer_id, page from access_log "
                "order by accessed_at desc limit ?",
                [limit],
            ).fetchall()

    def close(self) -> None:
        with self._lock:
            self._con.close()
