"""Schemas of the online-calibration and drift routes (api/routes/online.py): the gate
settings a request may override, and a run with its gate table, one row per pretest
item (`delivery.online_gates`)."""

from __future__ import annotations

from marshmallow import fields, validate

from irtcat.delivery.drift import MODES, WEIGHTS

from .schemas import Bool, Calibration, Integer, Number, Strict

ATTRIBUTE = validate.Regexp(r"^[a-z][a-z0-9_]{0,31}$")


class GateSettings(Strict):
    """Overrides of the standard's settings (a test's ``online_calibration``); a key left
    out keeps the standard's value."""

    min_answers = Integer(validate=validate.Range(min=50, max=10**7), metadata={
        "description": "answers a pretest item needs before it is calibrated (500)"})
    max_se_a = Number(validate=validate.Range(min=0.001, max=100))
    max_se_b = Number(validate=validate.Range(min=0.001, max=100))
    fit_alpha = Number(validate=validate.Range(min=0, max=1))
    dif_attributes = fields.List(fields.String(validate=ATTRIBUTE),
                                 validate=validate.Length(max=8))
    slope_range = fields.List(Number(), validate=validate.Length(equal=2))
    auto_publish = Bool()


class OnlineCalibrationRequest(Strict):
    settings = fields.Nested(GateSettings, load_default=dict)


class GateRow(Strict):
    """One pretest item: its answers, decision (promoted, held, waiting), the reasons it
    was held, its calibrated parameters and each gate's ``{"passed", "value",
    "reason"?}``."""

    item = fields.String(required=True)
    answers = fields.Integer(required=True)
    decision = fields.String(required=True)
    reasons = fields.List(fields.String(), required=True)
    parameters = fields.Dict(allow_none=True, required=True)
    gates = fields.Dict(required=True)


class OnlineRun(Calibration):
    """A calibration run with source ``online``: its settings and its gate table."""

    settings = fields.Dict(required=True)
    items = fields.List(fields.Nested(GateRow), required=True)


class DriftRequest(Strict):
    """Which operational items to study and when to flag them (`delivery.drift`)."""

    items = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                        load_default=None, validate=validate.Length(min=1, max=10_000),
                        metadata={"description": "the items to study (default: every "
                                                 "operational item with min_answers)"})
    mode = fields.String(load_default="each", validate=validate.OneOf(MODES),
                         metadata={"description": "each: one item free at a time, the others "
                                                  "fixed; together: the studied items free "
                                                  "at once"})
    weights = fields.String(load_default="takers", validate=validate.OneOf(WEIGHTS))
    z = Number(load_default=3.0, validate=validate.Range(min=0.001, max=100),
               metadata={"description": "|change / SE| of a or b that flags an item"})
    expected_score = Number(load_default=0.05, validate=validate.Range(min=0, max=1),
                            metadata={"description": "unsigned expected-score difference "
                                                     "(share of the score range) that flags"})
    min_answers = Integer(load_default=100, validate=validate.Range(min=20, max=10**7))
