"""Alembic environment of the run store.

`jobs.store.migrate` passes an open connection in ``config.attributes["connection"]``; the
``alembic`` command line (``alembic -c jobs/alembic.ini upgrade head``) uses ``CLAREL_DB_URL`` or
the default SQLite file instead.
"""

from __future__ import annotations

from alembic import context

from jobs.db import Base

target_metadata = Base.metadata


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from jobs.db import make_engine
    from jobs.store import database_url

    engine = make_engine(database_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
