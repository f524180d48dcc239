"""irtcat: an adaptive assessment engine.

The distribution installs this one top-level package. Its subpackages live in
the repository's top-level folders and are mapped here by ``setup.cfg``'s
``package_dir``:

- ``irtcat.engine`` (``engine/``): IRT numerics, ability estimation, the
  adaptive engine's roles;
- ``irtcat.calibration`` (``calibration/``): MML-EM, priors, item fit, linking;
- ``irtcat.itembank`` (``itembank/``): storage (database, schema, repositories,
  file formats);
- ``irtcat.delivery`` (``delivery/``): tests, sessions, scoring, keys and
  tokens, queued work;
- ``irtcat.api`` (``api/``): the HTTP API and the command line.

Importing this package imports nothing else, so ``irtcat --help`` starts at once.
"""

__version__ = "0.1.0"
