"""Schema upgrades: Alembic, run from code (`upgrade head` whenever a store is opened)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from kubeproof.store import StoreError
from kubeproof.store.db import Store, lock_for_migration, write_options

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this kubeproof ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def upgrade_to_head(store: Store) -> None:
    """Bring the schema to the newest revision, in one transaction that holds the
    writer's lock, so concurrent first runs do not both create the tables."""
    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with store.engine.connect() as connection:
        connection = connection.execution_options(**write_options())
        with connection.begin():
            lock_for_migration(connection)
            current = MigrationContext.configure(connection).get_current_heads()
            if current == (head,):
                return
            known = {
                script.revision for script in ScriptDirectory.from_config(config).walk_revisions()
            }
            unknown = [revision for revision in current if revision not in known]
            if unknown:
                raise StoreError(
                    f"database {store.url} has schema revision {', '.join(unknown)}, "
                    "newer than this kubeproof knows: upgrade kubeproof"
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
