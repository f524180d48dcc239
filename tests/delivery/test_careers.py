"""Roles met and gaps from known θ: a level is the highest whose cut θ reaches
(delivery.results.level_of), and a standard's gap is how many cuts lie above θ up to the
required level's cut (closed form: #{cut : θ < cut <= required cut}). Levels and roles
are the demo's (api/demo/framework.json, api/demo/careers.json)."""

import json
import pathlib

import pytest

from irtcat.delivery.careers import (
    check_required,
    level_ranks,
    levels_short,
    parse_min_levels,
    parse_roles,
    role_fit,
)
from irtcat.delivery.results import level_of
from irtcat.itembank.errors import DataFormatError, NotFoundError, ReferenceConflict

DEMO = pathlib.Path(__file__).resolve().parents[2] / "api" / "demo"
FRAMEWORK = {s["code"]: s for s in json.loads((DEMO / "framework.json").read_text())
             ["standards"]}
CAREERS = json.loads((DEMO / "careers.json").read_text())


def levels_of(code):
    """The levels that apply to `code`: its own, else its parent's (as the store reads)."""
    if code not in FRAMEWORK:
        raise NotFoundError(code)
    standard = FRAMEWORK[code]
    return standard["levels"] or levels_of(standard["parent"])


def cut_of(code, name):
    return next(level["cut"] for level in levels_of(code) if level["name"] == name)


def expected_short(code, theta, required):
    """Closed form: the cuts above θ up to the required level's."""
    return sum(theta < level["cut"] <= cut_of(code, required) for level in levels_of(code))


def result_standards(thetas):
    return [{"code": code, "level": level_of(levels_of(code), theta)}
            for code, theta in thetas.items()]


ROLES = parse_roles(CAREERS, levels_of)


def test_the_demo_roles_name_levels_the_standards_have():
    assert [role["id"] for role in ROLES] == ["ml-engineer", "ai-data-engineer",
                                              "ai-product-manager", "responsible-ai-lead"]
    assert levels_of("AI-DE") == FRAMEWORK["AI"]["levels"]          # inherited


def test_a_worked_case():
    # AI-ML 0.3: proficient (cuts -0.75, 0.25, 1.25); AI-DE 1.6: advanced (the parent's
    # cuts -0.5, 0.5, 1.5); AI-RAI -0.6: below its first cut -0.5, no level.
    fits = {fit["id"]: fit for fit in role_fit(ROLES, result_standards(
        {"AI-ML": 0.3, "AI-DE": 1.6, "AI-RAI": -0.6}), levels_of)}
    assert fits["ml-engineer"] == {"id": "ml-engineer", "title": "Machine learning engineer",
                                   "met": False, "gaps": [
        {"code": "AI-ML", "required": "advanced", "level": "proficient", "short": 1},
        {"code": "AI-RAI", "required": "foundational", "level": None, "short": 1}]}
    assert fits["ai-product-manager"]["gaps"] == [
        {"code": "AI-RAI", "required": "proficient", "level": None, "short": 2}]
    assert fits["responsible-ai-lead"]["gaps"] == [
        {"code": "AI-RAI", "required": "advanced", "level": None, "short": 3}]
    assert not any(fit["met"] for fit in fits.values())
    # exactly at the cuts: every level reached, every role met
    at_cuts = result_standards({"AI-ML": 1.25, "AI-DE": 1.5, "AI-RAI": 1.6})
    assert all(fit["met"] and fit["gaps"] == [] for fit in role_fit(ROLES, at_cuts, levels_of))


@pytest.mark.parametrize("theta", [-2.0, -0.75, -0.6, -0.5, 0.0, 0.25, 0.55, 0.6, 1.0,
                                   1.25, 1.5, 1.6, 2.5])
def test_gaps_are_the_cuts_between_theta_and_the_required_level(theta):
    thetas = {"AI-ML": theta, "AI-DE": theta - 0.1, "AI-RAI": theta + 0.05}
    for fit, role in zip(role_fit(ROLES, result_standards(thetas), levels_of), ROLES,
                         strict=True):
        expected = {code: expected_short(code, thetas[code], required)
                    for code, required in role["required"].items()}
        assert {gap["code"]: gap["short"] for gap in fit["gaps"]} == \
            {code: short for code, short in expected.items() if short}
        assert fit["met"] == (sum(expected.values()) == 0)
        for gap in fit["gaps"]:
            assert gap["level"] == level_of(levels_of(gap["code"]), thetas[gap["code"]])


def test_a_standard_not_assessed_is_short_of_every_level():
    [fit] = role_fit([ROLES[0]], [{"code": "AI-ML", "level": "advanced"}], levels_of)
    assert fit["gaps"] == [
        {"code": "AI-DE", "required": "proficient", "level": None, "short": 2},
        {"code": "AI-RAI", "required": "foundational", "level": None, "short": 1}]


def test_level_ranks_follow_the_cuts_not_the_listing_order():
    ranks = level_ranks([{"name": "high", "cut": 1.0}, {"name": "low", "cut": -1.0}])
    assert ranks == {"low": 0, "high": 1}
    assert levels_short(ranks, "high", None) == 2
    assert levels_short(ranks, "low", "high") == 0


def test_required_levels_are_checked_against_the_framework():
    assert check_required({"AI-DE": "advanced"}, levels_of) == {"AI-DE": "advanced"}
    with pytest.raises(ReferenceConflict, match="no standard 'AI-XX'"):
        check_required({"AI-XX": "advanced"}, levels_of)
    with pytest.raises(DataFormatError, match="AI-ML has no level 'expert'"):
        check_required({"AI-ML": "expert"}, levels_of)
    with pytest.raises(DataFormatError, match="at least one"):
        check_required({}, levels_of)


@pytest.mark.parametrize("document, message", [
    ({"format": "irtcat-framework/1", "roles": []}, "irtcat-roles/1"),
    ({"format": "irtcat-roles/1", "roles": [{"id": "Bad Id", "title": "x",
                                             "required": {"AI-ML": "advanced"}}]}, "match"),
    ({"format": "irtcat-roles/1", "roles": [{"id": "a", "title": "x",
                                             "required": {"AI-ML": "advanced"}}] * 2},
     "twice"),
    ({"format": "irtcat-roles/1", "roles": [{"id": "a", "title": " ",
                                             "required": {"AI-ML": "advanced"}}]}, "title"),
])
def test_a_malformed_career_framework_is_refused(document, message):
    with pytest.raises(DataFormatError, match=message):
        parse_roles(document, levels_of)


def test_min_levels_of_a_query():
    assert parse_min_levels("AI-ML:proficient,AI-DE:foundational", levels_of) == \
        {"AI-ML": "proficient", "AI-DE": "foundational"}
    for text in ("", "AI-ML", "AI-ML:", "AI-ML:proficient,", "AI-ML:a:b",
                 "AI-ML:proficient,AI-ML:advanced"):
        with pytest.raises(DataFormatError):
            parse_min_levels(text, levels_of)
