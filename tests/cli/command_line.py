"""Helpers of the command-line tests that run `irtcat` in process (not a test module)."""

import csv

from irtcat.api.cli import main


def run(capsys, *argv):
    """(exit status, standard output, standard error) of `irtcat ARGV...`."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def rows(text):
    """A CSV text's rows as dicts."""
    return list(csv.DictReader(text.splitlines()))
