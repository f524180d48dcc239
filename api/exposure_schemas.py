"""Schemas of the live exposure (``GET /v1/tests/{id}/exposure``) and of a session's
decision trace (``GET /v1/sessions/{id}/trace``), both admin-only."""

from __future__ import annotations

from marshmallow import fields, validate

from .schemas import Number, Strict


def _described(field, description, **options):
    """A required field of the class `field` documented by `description`."""
    return field(required=True, metadata={"description": description}, **options)


class ExposureSummary(Strict):
    """Operational figures over a set of sessions."""

    max_rate = _described(fields.Float, "highest exposure rate of an operational item")
    overlap_rate = _described(fields.Float, "expected share of operational items two "
                                             "sessions share")
    mean_length = _described(fields.Float, "operational items given per session started")
    unused_share = _described(fields.Float, "share of the bank's operational items given "
                                            "to no session")


class ItemExposure(Strict):
    item_id = fields.String(required=True)
    pretest = fields.Boolean(required=True)
    administered = _described(fields.Integer, "sessions given the item")
    ineligible = _described(fields.Integer, "sessions that drew it ineligible (item "
                                            "eligibility)")
    rate = _described(fields.Float, "administered / sessions started")


class DayExposure(ExposureSummary):
    day = fields.String(required=True, metadata={"description": "UTC day, YYYY-MM-DD"})
    sessions = fields.Integer(required=True)


class BandExposure(Strict):
    band = fields.Integer(required=True)
    low = fields.Float(required=True, allow_none=True, metadata={"description": "θ from"})
    high = fields.Float(required=True, allow_none=True, metadata={"description": "θ below"})
    sessions = _described(fields.Integer, "sessions given an item at a θ in the band")
    max_rate = _described(fields.Float, "highest rate of an operational item in the band")
    items = fields.List(fields.Nested(ItemExposure), required=True)


class TestExposure(ExposureSummary):
    __test__ = False

    test_id = fields.String(required=True)
    sessions = fields.Integer(required=True, metadata={"description": "sessions started"})
    items = fields.List(fields.Nested(ItemExposure), required=True)
    days = fields.List(fields.Nested(DayExposure), required=True)
    bands = fields.List(fields.Nested(BandExposure), metadata={
        "description": "per θ band (a test with exposure.theta_bands only)"})


class Candidate(Strict):
    item_id = fields.String(required=True)
    value = fields.Float(required=True, metadata={"description": "the selection criterion"})


class TraceStep(Strict):
    step = fields.Integer(required=True, metadata={
        "description": "position of the item chosen (or, with stop, after the last)"})
    theta = Number(required=True, metadata={
        "description": "the estimate chosen at (a list, one per factor, for a "
                       "multidimensional test)"})
    se = Number(required=True)
    item = fields.String(metadata={"description": "the item chosen"})
    pretest = fields.Boolean(metadata={"description": "a pretest slot: chosen at random"})
    eligible = fields.Integer(metadata={"description": "items the criterion ranked"})
    candidates = fields.List(fields.Nested(Candidate), metadata={
        "description": "the best candidates, best first"})
    rejected = fields.List(fields.String(), metadata={
        "description": "items Sympson-Hetter passed over at this step"})
    ineligible = fields.List(fields.String(), metadata={
        "description": "items drawn ineligible at the start (item eligibility)"})
    band = fields.Integer(metadata={"description": "θ band chosen in (exposure.theta_bands)"})
    ineligible_bands = fields.List(fields.List(fields.String()), metadata={
        "description": "per θ band, items drawn ineligible at the start"})
    stop = fields.String(validate=validate.OneOf(("max_items", "pool_exhausted",
                                                  "rules_met")),
                         metadata={"description": "why the test ended"})


class SessionTrace(Strict):
    session_id = fields.String(required=True)
    test_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("active", "finished")))
    steps = fields.List(fields.Nested(TraceStep), required=True)
