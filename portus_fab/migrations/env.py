"""Alembic's entry point for portus_fab's history. Run only through `portus_fab.migrations`, which
hands it the app's connection."""

from alembic import context

from portus_fab.migrations import VERSION_TABLE, include_object
from portus_fab.models import Model

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Model.metadata,
    version_table=VERSION_TABLE,
    include_object=include_object,
    # SQLite changes a column by copying its table; batch operations do that there and plain
    # ALTERs elsewhere, so one revision serves both databases.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
