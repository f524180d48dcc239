"""The keys a multidimensional test's session result adds to the v1 result shapes
(`api.schemas.Feedback`, `api.schemas.Result`; docs/multidimensional-cat.md): ``thetas``
(θ and SE per factor, i.e. per standard) and ``composite`` (θ, SE and the weights)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class FactorEstimate(Schema):
    class Meta:
        unknown = RAISE

    theta = fields.Float(allow_none=True)
    se = fields.Float(allow_none=True)


class Composite(Schema):
    """A multidimensional test's composite: the weighted sum of the factors' θ."""

    class Meta:
        unknown = RAISE

    theta = fields.Float(allow_none=True)
    se = fields.Float(allow_none=True)
    weights = fields.Dict(keys=fields.String(), values=fields.Float(), required=True,
                          metadata={"description": "the weight of each factor (standard)"})


def thetas_field():
    return fields.Dict(keys=fields.String(), values=fields.Nested(FactorEstimate), metadata={
        "description": "a multidimensional test's θ and SE per factor (standard)"})


def composite_field():
    return fields.Nested(Composite, metadata={
        "description": "a multidimensional test's composite; theta and se are its"})
