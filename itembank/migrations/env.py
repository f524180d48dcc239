"""Alembic environment: runs the migrations on the connection `itembank.store` hands over."""

from alembic import context

from irtcat.itembank.counters import include_name
from irtcat.itembank.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through itembank.store.upgrade, which passes a connection")

# The rate-limit counters' table (itembank/counters.py) is a cache outside the schema.
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite",
                  include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
