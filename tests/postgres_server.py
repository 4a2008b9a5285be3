"""A throwaway Postgres server for the test suite, started from the machine's own binaries.

Postgres refuses to run as root, so when the tests run as root the server runs as the
``postgres`` system user (Debian's postgresql package creates it). ``make test`` installs the
package when no ``pg_ctl`` is found.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from orchestration.warehouse import PostgresSettings


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    """``PG_BINDIR``, else Debian's newest /usr/lib/postgresql/*/bin, else pg_ctl on PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str = "tessera"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _as_server_user(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")
        run = lambda args: subprocess.run(  # noqa: E731
            self._as_server_user(args), check=True, capture_output=True, text=True
        )
        try:
            run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust",
                 "-U", self.user, "--no-sync", "-E", "UTF8"])  # fmt: skip
            # Durability settings off: a test server is thrown away, speed matters more.
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
            )
            run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", options,
                 "-l", str(self.root / "server.log"), "-w", "-t", "60", "start"])  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            detail = log.read_text() if log.exists() else ""
            raise PostgresUnavailable(
                f"could not start Postgres from {self.bindir}: {exc.stderr}\n{detail}"
            ) from exc

    def stop(self) -> None:
        subprocess.run(
            self._as_server_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> PostgresSettings:
        admin = psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        )
        with admin:
            admin.execute(f'drop database if exists "{name}" with (force)')
            admin.execute(f'create database "{name}"')
        return PostgresSettings(
            host="127.0.0.1", port=self.port, user=self.user, password="", dbname=name,
            schema="public",
        )  # fmt: skip


def start_server() -> PostgresServer:
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no pg_ctl found: install Debian's postgresql package (make test does) or set PG_BINDIR"
        )
    root = Path(tempfile.mkdtemp(prefix="tessera-pg-"))
    server = PostgresServer(bindir=bindir, root=root, port=free_port())
    server.start()
    return server
