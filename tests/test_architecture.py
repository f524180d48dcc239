"""The architecture the code keeps (STYLE.md, 'Layout'; the layers of irtcat/__init__.py).

- Layers: engine (numerics) -> calibration (estimation) -> itembank (storage) ->
  delivery (tests, sessions, scoring, keys, calibration runs) -> api (HTTP and command
  line). A layer imports only layers to its left; nothing imports api; the benchmarks
  may import every layer but api.
- Libraries: SQLAlchemy and alembic only inside itembank; flask, flask_smorest,
  marshmallow, werkzeug and apispec only inside api.
- Exceptions: every exception storage raises is defined in itembank/errors.py, every
  one of delivery's in delivery/errors.py.
- Length: a product module over MAX_LINES lines says why in its docstring, in a
  paragraph starting with ``Length:`` (see `length_reason`).

Each rule is a function that returns its offenders, and each is shown to catch a
made-up offender (the `test_*_catches_*` probes), so no check passes by seeing nothing.
"""

import ast
import builtins
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("engine", "calibration", "itembank", "delivery", "api")
ALLOWED = {layer: set(LAYERS[:position]) for position, layer in enumerate(LAYERS)}
ALLOWED["benchmarks"] = set(LAYERS) - {"api"}     # they measure every layer below the API
DATABASE_LIBRARIES = {"sqlalchemy", "alembic"}
WEB_LIBRARIES = {"flask", "flask_smorest", "marshmallow", "werkzeug", "apispec"}
MAX_LINES = 500
EXCEPTION_MODULES = {"itembank": "itembank/errors.py", "delivery": "delivery/errors.py"}

# Exemptions while a module is being reworked: modules over MAX_LINES lines without a
# `Length:` reason yet, and API modules that still import SQLAlchemy. Empty: every
# module keeps the rules (an entry that no longer needs to be here fails
# `test_pending_modules_are_still_pending`).
PENDING = set()
PENDING_DATABASE_IMPORTS = set()


# --- what a module imports and defines ---------------------------------------------------

def _package_of(module):
    """'irtcat.engine.models' -> 'engine'; a library's top-level name otherwise."""
    parts = module.split(".")
    return parts[1] if parts[0] == "irtcat" and len(parts) > 1 else parts[0]


def imported_top_levels(path):
    """The packages of ours (by layer name) and the libraries `path` imports, anywhere in
    it (function-level imports included); relative imports stay in their package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _package_of(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "irtcat":                   # from irtcat import engine
                yield from (alias.name for alias in node.names)
            else:
                yield _package_of(node.module)


def modules_of(package):
    return sorted((ROOT / package).rglob("*.py"))


def _relative(path):
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def layer_offenders(paths, package):
    """``["path imports layer"]`` for each import of a layer `package` may not use."""
    return [f"{_relative(path)} imports {name}" for path in paths
            for name in sorted(set(imported_top_levels(path)))
            if name in LAYERS and name != package and name not in ALLOWED[package]]


def library_offenders(paths, libraries):
    """``["path imports library"]`` for each import of one of `libraries`."""
    return [f"{_relative(path)} imports {name}" for path in paths
            for name in sorted(set(imported_top_levels(path))) if name in libraries]


_BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                       if isinstance(value, type) and issubclass(value, BaseException)}


def exception_classes(path, known=()):
    """Names of the classes `path` defines whose base is an exception: a built-in one, one
    of `known`, or a name ending in Error, Exception, Failed or Warning."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else \
                base.attr if isinstance(base, ast.Attribute) else ""
            if name in _BUILTIN_EXCEPTIONS or name in known or \
                    name.endswith(("Error", "Exception", "Failed", "Warning")):
                found.append(node.name)
                break
    return found


def length_reason(path):
    """The text of the docstring paragraph starting with ``Length:``, or None."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    for paragraph in docstring.split("\n\n"):
        paragraph = paragraph.strip()
        if paragraph.startswith("Length:") and len(paragraph.split()) >= 4:
            return paragraph
    return None


def too_long_without_reason(paths):
    """The paths over MAX_LINES lines whose docstring gives no `Length:` reason."""
    return [_relative(path) for path in paths
            if len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES
            and length_reason(path) is None]


def product_modules():
    return [path for layer in LAYERS for path in modules_of(layer)
            if "migrations" not in path.parts]


# --- the rules on the code ------------------------------------------------------------------

@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_layers_to_its_left(package):
    assert layer_offenders(modules_of(package), package) == []


def test_nothing_imports_api():
    scanned = [path for package in sorted(ALLOWED) if package != "api"
               for path in modules_of(package)]
    assert library_offenders(scanned, {"api"}) == []       # irtcat.api, by its layer name


@pytest.mark.parametrize("package", ["engine", "calibration", "delivery", "api", "benchmarks"])
def test_database_libraries_stay_in_itembank(package):
    # The benchmarks make and drop the databases they measure.
    allowed = {"benchmarks": DATABASE_LIBRARIES}.get(package, set())
    paths = [path for path in modules_of(package)
             if _relative(path) not in PENDING_DATABASE_IMPORTS]
    assert library_offenders(paths, DATABASE_LIBRARIES - allowed) == []


@pytest.mark.parametrize("package", ["engine", "calibration", "itembank", "delivery",
                                     "benchmarks"])
def test_web_libraries_stay_in_api(package):
    assert library_offenders(modules_of(package), WEB_LIBRARIES) == []


@pytest.mark.parametrize("package", sorted(EXCEPTION_MODULES))
def test_exceptions_are_defined_in_one_module(package):
    home = ROOT / EXCEPTION_MODULES[package]
    known = set(exception_classes(home))
    assert known, f"{EXCEPTION_MODULES[package]} defines no exception"
    elsewhere = {_relative(path): exception_classes(path, known)
                 for path in modules_of(package) if path != home}
    assert {path: names for path, names in elsewhere.items() if names} == {}


def test_storage_exceptions_are_the_ones_storage_raises():
    names = set(exception_classes(ROOT / EXCEPTION_MODULES["itembank"]))
    assert {"NotFoundError", "DataFormatError", "DatabaseError", "PreconditionFailed"} <= names


def test_long_modules_say_why():
    offenders = [path for path in too_long_without_reason(product_modules())
                 if path not in PENDING]
    assert offenders == []


def test_pending_modules_are_still_pending():
    still = set(too_long_without_reason([ROOT / path for path in sorted(PENDING)
                                         if (ROOT / path).exists()]))
    assert sorted(PENDING - still) == []
    importing = {path for path in PENDING_DATABASE_IMPORTS if (ROOT / path).exists() and
                 library_offenders([ROOT / path], DATABASE_LIBRARIES)}
    assert sorted(PENDING_DATABASE_IMPORTS - importing) == []


# --- each rule catches an offender ------------------------------------------------------

def _probe(tmp_path, text, name="probe.py"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_walk_sees_imports(tmp_path):
    probe = _probe(tmp_path, "import irtcat.api.cli\nfrom irtcat.engine.models import x\n"
                             "from irtcat import delivery\n"
                             "def f():\n    from sqlalchemy.orm import Session\n")
    assert set(imported_top_levels(probe)) == {"api", "engine", "delivery", "sqlalchemy"}


def test_the_layer_rule_catches_an_import_to_the_right(tmp_path):
    probe = _probe(tmp_path, "from irtcat.engine import models\n"
                             "from irtcat.delivery.sessions import Delivery\n")
    assert layer_offenders([probe], "itembank") == ["probe.py imports delivery"]
    assert layer_offenders([probe], "api") == []
    assert layer_offenders([_probe(tmp_path, "import irtcat.api.app\n")], "benchmarks") == \
        ["probe.py imports api"]


def test_the_library_rule_catches_a_library(tmp_path):
    probe = _probe(tmp_path, "import numpy\ndef f():\n    from flask import g\n"
                             "from alembic import command\n")
    assert library_offenders([probe], WEB_LIBRARIES) == ["probe.py imports flask"]
    assert library_offenders([probe], DATABASE_LIBRARIES) == ["probe.py imports alembic"]


def test_the_exception_rule_catches_a_class(tmp_path):
    probe = _probe(tmp_path, "import x\nclass Gone(LookupError):\n    pass\n"
                             "class Stale(x.PreconditionFailed):\n    pass\n"
                             "class Mine(NotFoundError):\n    pass\n"
                             "class Fine(dict):\n    pass\n")
    assert exception_classes(probe, {"NotFoundError"}) == ["Gone", "Stale", "Mine"]


def test_the_length_rule_catches_a_long_module(tmp_path):
    body = "x = 1\n" * MAX_LINES
    silent = _probe(tmp_path, '"""A module."""\n' + body, "silent.py")
    reasoned = _probe(tmp_path, '"""A module.\n\nLength: one algorithm whose steps share '
                                'state, read best in one file.\n"""\n' + body, "reasoned.py")
    short = _probe(tmp_path, '"""A module."""\n' + "x = 1\n" * (MAX_LINES - 1), "short.py")
    bare = _probe(tmp_path, '"""A module.\n\nLength:\n"""\n' + body, "bare.py")
    assert too_long_without_reason([silent, reasoned, short, bare]) == ["silent.py", "bare.py"]


def test_every_package_is_installed():
    """setup.cfg lists packages by hand (the folders map onto irtcat.*): every folder
    with an __init__.py must be listed, or a wheel (not an editable install) lacks it."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    folders = {"engine", "calibration", "itembank", "delivery", "api"}
    found = {"irtcat." + ".".join(init.parent.relative_to(ROOT).parts)
             for folder in folders for init in (ROOT / folder).rglob("__init__.py")}
    assert found - listed == set()
