"""Console users, roles and passwords: the users file, the environment, Argon2 hashes."""

from pathlib import Path

import pytest

from orchestration.console.access import (
    AccessError,
    AccessLog,
    Masker,
    add_user,
    authenticate,
    load_users,
    session_secret,
)
from orchestration.privacy import mask


def test_a_user_added_to_the_file_signs_in_with_their_password_only(tmp_path: Path) -> None:
    path = tmp_path / "users.yml"
    add_user(path, "ana", "admin", "correct horse")
    add_user(path, "vic", "viewer", "battery staple")
    add_user(path, "vic", "admin", "new password")  # replaces vic's role and password
    users = load_users({"TESSERA_CONSOLE_USERS_FILE": str(path)})

    assert sorted((u.name, u.role) for u in users.values()) == [("ana", "admin"), ("vic", "admin")]
    assert "correct horse" not in path.read_text()
    assert users["ana"].password_hash.startswith("$argon2id$")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert authenticate(users, "ana", "correct horse") == users["ana"]
    assert authenticate(users, "ana", "Correct horse") is None
    assert authenticate(users, "vic", "battery staple") is None
    assert authenticate(users, "vic", "new password") == users["vic"]
    assert authenticate(users, "nobody", "correct horse") is None


def test_users_come_from_the_environment_too_and_bad_entries_are_named(tmp_path: Path) -> None:
    path = tmp_path / "users.yml"
    ana = add_user(path, "ana", "admin", "correct horse")
    env = {
        "TESSERA_CONSOLE_USERS_FILE": str(tmp_path / "absent.yml"),
        "TESSERA_CONSOLE_USERS": f"ana:viewer:{ana.password_hash}",
    }
    users = load_users(env)
    assert users["ana"].role == "viewer"
    assert authenticate(users, "ana", "correct horse") is not None

    with pytest.raises(AccessError, match="ana is also in"):
        load_users({**env, "TESSERA_CONSOLE_USERS_FILE": str(path)})
    with pytest.raises(AccessError, match="role 'owner'; roles: viewer, admin"):
        load_users({"TESSERA_CONSOLE_USERS": f"bo:owner:{ana.password_hash}"})
    with pytest.raises(AccessError, match="needs an Argon2 password_hash"):
        load_users({"TESSERA_CONSOLE_USERS": "bo:viewer:plaintext"})
    with pytest.raises(AccessError, match="at least 8 characters"):
        add_user(path, "bo", "viewer", "short")


def test_a_viewer_sees_values_masked_as_the_sync_logs_mask_them() -> None:
    assert Masker(full=False)("Ann.Lee@Mail.com") == mask("Ann.Lee@Mail.com")
    assert Masker(full=False)("Ann.Lee@Mail.com").startswith("A***@Mail.com#")
    assert Masker(full=True)("Ann.Lee@Mail.com") == "Ann.Lee@Mail.com"
    assert Masker(full=False)(None) is None


def test_the_session_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    env = {"TESSERA_CONSOLE_DIR": str(tmp_path)}
    first = session_secret(env)
    assert len(first) >= 48
    assert session_secret(env) == first
    assert oct((tmp_path / "secret").stat().st_mode & 0o777) == "0o600"
    assert session_secret({**env, "TESSERA_CONSOLE_SECRET": "given"}) == "given"


def test_the_access_log_keeps_who_looked_at_whom(tmp_path: Path) -> None:
    path = tmp_path / "users.yml"
    ana = add_user(path, "ana", "admin", "correct horse")
    vic = add_user(path, "vic", "viewer", "battery staple")
    log = AccessLog(tmp_path / "access_log.duckdb")
    log.record(vic, "cus_1", "profile")
    log.record(ana, "cus_2", "profile")
    rows = log.recent()
    log.close()
    assert [(who, role, customer, page) for _, who, role, customer, page in rows] == [
        ("ana", "admin", "cus_2", "profile"),
        ("vic", "viewer", "cus_1", "profile"),
    ]
    reopened = AccessLog(tmp_path / "access_log.duckdb")
    assert len(reopened.recent()) == 2  # kept across restarts
    reopened.close()
