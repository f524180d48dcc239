"""Migration 0009: the key roles cat-client and employer, on a store that already holds
keys and sessions referring to them (SQLite rebuilds the table: its rows and every
reference to them must survive)."""

import sqlalchemy

from irtcat.delivery.keys import authenticate, create_key
from irtcat.itembank.database import Database, upgrade
from irtcat.itembank.errors import DataFormatError
from irtcat.itembank.sessions import add_session


def test_new_roles_join_a_store_with_keys_and_sessions(database_url):
    database = Database(database_url)
    try:
        upgrade(database, "0008")
        with database.engine.begin() as connection:      # the rows as of 0008, in SQL
            connection.exec_driver_sql(
                "INSERT INTO tests (id, title, standards, config, public, feedback, "
                "public_pool, created_at) VALUES ('t', 'T', '[]', '{}', false, false, "
                "'practice', CURRENT_TIMESTAMP)")
        admin = create_key(database, "admin", "before")
        key_id = authenticate(database, admin)[1]
        add_session(database, id="s1", test_id="t", learner_id="l", token_digest="d" * 64,
                    status="active", versions={}, seed=1, position=0, key_id=key_id)
        with database.engine.begin() as connection:      # what 0008 refuses
            try:
                connection.exec_driver_sql(
                    "INSERT INTO api_keys (prefix, digest, role, name, created_at) "
                    "VALUES ('irtk_x', 'x', 'employer', '', CURRENT_TIMESTAMP)")
                refused = False
            except sqlalchemy.exc.IntegrityError:
                refused = True
        assert refused

        upgrade(database)
        assert authenticate(database, admin) == ("key", key_id, "admin")
        for role in ("cat-client", "employer"):
            assert authenticate(database, create_key(database, role))[2] == role
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql(
                "SELECT key_id FROM sessions WHERE id = 's1'").scalar() == key_id
        try:
            create_key(database, "owner")
            raise AssertionError("an unknown role was accepted")
        except DataFormatError as error:
            assert "cat-client" in str(error)
    finally:
        database.dispose()
