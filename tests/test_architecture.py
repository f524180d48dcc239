"""The import direction of the packages (STYLE.md, 'Layout').

engine imports none of our packages; nothing imports api; flask and
marshmallow only inside api.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
OURS = {"engine", "itembank", "calibration", "api"}
ALLOWED = {
    "engine": set(),
    "itembank": {"engine"},
    "calibration": {"engine", "itembank"},
    "api": {"engine", "itembank", "calibration"},
}


def _package_of(module):
    """'irtcat.engine.models' -> 'engine'; a library's top-level name otherwise."""
    parts = module.split(".")
    return parts[1] if parts[0] == "irtcat" and len(parts) > 1 else parts[0]


def imported_top_levels(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _package_of(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield _package_of(node.module)


def modules_of(package):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package):
    for path in modules_of(package):
        for name in imported_top_levels(path):
            if name in OURS and name != package:
                assert name in ALLOWED[package], f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("package", ["engine", "itembank", "calibration"])
def test_web_libraries_stay_in_api(package):
    for path in modules_of(package):
        for name in imported_top_levels(path):
            assert name not in {"flask", "marshmallow", "werkzeug"}, \
                f"{path.relative_to(ROOT)} imports {name}"


def test_nothing_imports_api():
    # The product's packages and the benchmarks; tests exercise api and may import it.
    scanned = [p for package in ("engine", "itembank", "calibration", "benchmarks")
               for p in modules_of(package)]
    offenders = [str(p.relative_to(ROOT)) for p in scanned
                 if "api" in set(imported_top_levels(p))]
    assert offenders == []


def test_the_walk_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import irtcat.api.cli\nfrom irtcat.engine.models import x\n")
    assert set(imported_top_levels(probe)) == {"api", "engine"}
