"""`irtcat`: the command line run in process on the test's database, for the store
and server commands' tests."""

import pytest

from irtcat.api.cli import main


@pytest.fixture
def irtcat(database_url, monkeypatch, capsys):
    monkeypatch.setenv("IRTCAT_DATABASE_URL", database_url)

    def run(*argv):
        status = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return status, out, err
    return run
