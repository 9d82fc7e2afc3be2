"""Where the evidence store lives: database URLs, engines, and the one-writer-at-a-time rule.

A URL is either an SQLAlchemy URL (`sqlite:///path`, `postgresql://user@host/db`) or a
plain file path (an SQLite file). Opening a store brings its schema to the newest Alembic
revision, so a newer kubeproof upgrades an older database the first time it touches it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url, select, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from kubeproof.redaction import redact
from kubeproof.store import ENVIRONMENT_VARIABLE, DamagedStore, StoreError
from kubeproof.store.decoding import UnreadableValue, damaged_row
from kubeproof.store.schema import Base
from kubeproof.store.signing import SIGNER_INFO, Signer, SigningKeyError, load_signer

_WRITE = "kubeproof_write"  # execution option: this transaction appends evidence
_MIGRATION_LOCK = 0x6B7072  # PostgreSQL advisory lock key ("kpr") while migrating
# How long a writer waits for another writer before giving up (seconds).
_LOCK_TIMEOUT = 60.0


def _damaged(url: str, session: Session, error: UnreadableValue) -> DamagedStore:
    row = damaged_row(session, error, Base.metadata)
    where = f"{row}: {error}" if row else str(error)
    return DamagedStore(
        f"cannot read the evidence store {url}: {where}. The store was damaged or "
        "tampered with: run `kubeproof evidence verify` on it to see what was altered"
    )


def default_location() -> Path:
    """$XDG_DATA_HOME/kubeproof/kubeproof.db (~/.local/share by default)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "kubeproof" / "kubeproof.db"


def resolve_url(given: str | None) -> str:
    """The database to use: --db, else $KUBEPROOF_DB, else the default SQLite file."""
    if given:
        return given
    return os.environ.get(ENVIRONMENT_VARIABLE) or str(default_location())


_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@\s]*:)[^@\s]*(?P<tail>@)")


def display_url(raw: str) -> str:
    """A URL fit for messages: its password masked, even when the URL does not parse."""
    return redact(_PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", raw))


def parse_url(raw: str) -> URL:
    """An SQLAlchemy URL for a --db value; PostgreSQL URLs get the psycopg driver."""
    text_url = raw.strip()
    if not text_url:
        raise StoreError("empty database URL")
    if "://" not in text_url:
        # A plain path: an SQLite file.
        return URL.create("sqlite", database=str(Path(text_url).expanduser()))
    try:
        url = make_url(text_url)
    except (exc.ArgumentError, ValueError) as error:
        raise StoreError(f"malformed database URL {display_url(raw)}: {error}") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if url.get_driver_name() not in ("", "psycopg", "psycopg2"):
            raise StoreError(
                f"unsupported PostgreSQL driver in {display_url(raw)}: use postgresql+psycopg://"
            )
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if url.database in (None, ""):
            raise StoreError(f"database URL {display_url(raw)} names no SQLite file")
        return url
    raise StoreError(
        f"unsupported database URL {display_url(raw)}: use sqlite:///FILE, "
        "postgresql://USER@HOST/DB or a file path"
    )


@dataclass
class Store:
    """An open evidence store: an engine whose schema is at the newest revision."""

    engine: Engine
    url: str  # for messages: no password
    signer: Signer | None = None  # signs every ledger entry this store appends

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session to read with; a stored value that cannot be decoded ends it with a
        DamagedStore naming the row."""
        with Session(self.engine) as session:
            try:
                yield session
            except UnreadableValue as error:
                raise _damaged(self.url, session, error) from None

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One transaction that holds the writer's lock from its first statement: SQLite's
        BEGIN IMMEDIATE; on PostgreSQL the ledger head row, locked FOR UPDATE by the
        caller. Commits on success, rolls everything back on any error."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(**{_WRITE: True})
            info = {SIGNER_INFO: self.signer}
            with Session(bind=connection, info=info) as session, session.begin():
                yield session

    def close(self) -> None:
        self.engine.dispose()


def open_store(
    raw_url: str | None = None,
    *,
    create: bool = True,
    migrate: bool = True,
    signing_key: str | None = None,
) -> Store:
    """Open (upgrading as needed) the store named by `raw_url`, --db style. Without
    `create`, a missing SQLite file is an error rather than a new empty store. A store
    opened to write (`create`) signs its ledger entries with `signing_key`, else with
    the key file $KUBEPROOF_SIGNING_KEY names, if either is given."""
    chosen = resolve_url(raw_url)
    url = parse_url(chosen)
    shown = display_url(url.render_as_string(hide_password=True))
    if not create and url.get_backend_name() == "sqlite" and not _sqlite_exists(url):
        raise StoreError(f"no evidence store at {shown}: record a scan first (kubeproof scan --db)")
    try:
        signer = load_signer(signing_key) if create else None
    except SigningKeyError as error:
        raise StoreError(str(error)) from None
    engine = _engine(url)
    store = Store(engine, shown, signer)
    try:
        if migrate:
            from kubeproof.store.migrate import upgrade_to_head

            upgrade_to_head(store)
        else:
            with engine.connect() as connection:
                connection.execute(select(1))
    except exc.DBAPIError as error:
        engine.dispose()
        raise StoreError(f"cannot open database {shown}: {describe(error, url)}") from None
    except OSError as error:
        engine.dispose()
        raise StoreError(f"cannot open database {shown}: {error.strerror or error}") from None
    return store


def _sqlite_exists(url: URL) -> bool:
    """Whether the SQLite file holds a store. A reader must not turn an empty file, or
    another program's database, into one by creating the schema in it."""
    database = url.database or ""
    if database == ":memory:" or database.startswith("file:"):
        return True
    if not Path(database).is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{quote(database)}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError:
        return True  # not SQLite at all: opening it says so
    return "ledger" in tables


def describe(error: exc.DBAPIError, url: URL | None = None) -> str:
    """The driver's own words, first line only, without the password if it quoted it."""
    original = error.orig if error.orig is not None else error
    message = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    if url is not None and url.password:
        message = message.replace(str(url.password), "***")
    return redact(message)


def _engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        connect_args={"connect_timeout": 10},
        pool_pre_ping=True,
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database != ":memory:" and not database.startswith("file:"):
        path = Path(database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the directory of database {path}: {error.strerror or error}"
            ) from None
    engine = create_engine(url, connect_args={"timeout": _LOCK_TIMEOUT})

    # The sqlite3 module's own transaction handling would BEGIN lazily and DEFERRED, so
    # two writers could both read the ledger head before either locks it. Take control
    # of BEGIN (SQLAlchemy's documented recipe) and make writers BEGIN IMMEDIATE.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(_LOCK_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def lock_for_migration(connection: Connection) -> None:
    """Serialise schema upgrades: two first runs against a new database must not both
    create the tables."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def write_options() -> dict[str, Any]:
    return {_WRITE: True}
