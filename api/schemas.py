"""Marshmallow schemas of the v1 API: they validate every request body and shape every
response (a response is dumped through its schema, so a field that is not declared,
an answer key say, cannot reach a client). The OpenAPI document is generated from
them (`api.openapi`). A route family with shapes of its own keeps them beside its
routes (`api.exposure_schemas`, `api.online_schemas`, `api.careers_schemas`, ...).

Length: the shared shapes of the v1 API in one module, a few lines over 500 since a
multidimensional test's result keys (`api.mcat_schemas`) joined Feedback and Result."""

from __future__ import annotations

from marshmallow import (
    INCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_dump,
    post_load,
    validate,
    validates_schema,
)

from irtcat.calibration.mml_em import M_STEPS
from irtcat.delivery.scoring import MIN_SCORED_ITEMS, SCORE_DECIMALS
from irtcat.engine import METHODS, MODELS

from . import mcat_schemas

# Names and texts hold a character other than white space, as Python's str.isspace
# reads it (the store strips them): the class is spelled out because `\s` means other
# characters in Python and in an OpenAPI (ECMA) pattern. No NUL either (refused
# before any schema applies). Anchored, it reads the same as a match and as a search.
WHITE_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
VISIBLE = validate.Regexp(rf"^[^\x00]*[^\x00{WHITE_SPACE}][^\x00]*$",
                          error="must hold a character other than white space")


def visible_text(max_length):
    return [validate.Length(min=1, max=max_length), VISIBLE]


ID = visible_text(64)
NAME = visible_text(200)


class Strict(Schema):
    class Meta:
        unknown = RAISE


# Request fields take JSON's own types only, so that the document's `type` is the whole
# rule: marshmallow's defaults would also take "1.5" for a number, "yes" or 1 for a
# boolean and "3" or 3.0 for an integer.

class Number(fields.Float):
    """A JSON number (not a string, not a boolean), finite; a list is shown as held (a
    multidimensional item's slopes, imported with `irtcat bank import`)."""

    def _serialize(self, value, *args, **kwargs):
        return value if isinstance(value, list) else super()._serialize(value, *args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Bool(fields.Boolean):
    """true or false, nothing else."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def Integer(**kwargs):
    """A JSON integer (not 3.0, not "3", not a boolean)."""
    return fields.Integer(strict=True, **kwargs)


class Difficulty(fields.Field):
    """b: a number, or a list of numbers (the thresholds of a polytomous item)."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValidationError("a number, or a list of numbers for polytomous items")
        return value


class Error(Strict):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorEnvelope(Strict):
    error = fields.Nested(Error, required=True)


class Health(Strict):
    status = fields.String(required=True)
    database = fields.String(required=True)


class Level(Strict):
    name = fields.String(required=True, validate=visible_text(100))
    cut = Number(required=True)


class StandardDoc(Strict):
    code = fields.String(required=True, validate=ID)
    title = fields.String(validate=NAME)
    description = fields.String(validate=validate.Length(max=10_000))
    parent = fields.String(allow_none=True, validate=ID)
    levels = fields.List(fields.Nested(Level))


class StandardUpdate(StandardDoc):
    code = fields.String(validate=ID)


class Option(Strict):
    id = fields.String(required=True, validate=ID)
    text = fields.String(required=True, validate=visible_text(2_000))


class Content(Strict):
    stem = fields.String(required=True, validate=visible_text(10_000))
    options = fields.List(fields.Nested(Option), required=True,
                          validate=validate.Length(min=2))


class ItemDoc(Schema):
    """An item as an admin sees it (FORMATS.md); other keys are kept as given."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True, validate=ID)
    standard = fields.String(required=True, validate=ID)
    model = fields.String(required=True, validate=validate.OneOf(MODELS))
    a = Number(validate=validate.Range(min=0, min_inclusive=False),
               metadata={"exclusiveMinimum": True})       # OpenAPI 3.0's spelling of > 0
    b = Difficulty(metadata={"description": "a number, or a list for polytomous items",
                             "oneOf": [{"type": "number"},
                                       {"type": "array", "items": {"type": "number"},
                                        "minItems": 1}]})
    # Bounds every model keeps (itembank.io.item_parameters): 0 <= c < 1, 0 < u <= 1.
    c = Number(validate=validate.Range(min=0, max=1, max_inclusive=False),
               metadata={"exclusiveMaximum": True})
    u = Number(validate=validate.Range(min=0, max=1, min_inclusive=False),
               metadata={"exclusiveMinimum": True})
    se = fields.Dict()                      # objects when given (itembank.records)
    fit = fields.Dict()
    slope_intercept = fields.Dict()
    se_slope_intercept = fields.Dict()
    content = fields.Nested(Content, allow_none=True)
    key = fields.Dict(allow_none=True,
                      metadata={"description": '{"correct": "B"} or {"scores": {"A": 0, ...}}'})
    status = fields.String(validate=validate.OneOf(("pretest", "operational", "retired")))
    tags = fields.List(fields.String(validate=validate.Length(min=1)), allow_none=True)
    enemies = fields.List(fields.String(validate=validate.Length(min=1)), allow_none=True)

    @post_dump(pass_original=True)
    def _keep_other_keys(self, data, original, **kwargs):
        return {**data, **{name: value for name, value in original.items()
                           if name not in self.fields}}

    @post_load(pass_original=True)
    def _as_given(self, data, original, **kwargs):
        """Loaded as given: the store reads the document itself (parameters against the
        model, the key against the options)."""
        return original


class ItemReplace(ItemDoc):
    """PUT /v1/items/{item_id}'s body: an item whose id, when given, is the URL's."""

    id = fields.String(validate=ID)


class ItemsImport(Schema):
    """POST /v1/items's body: one item, a list of them, or an irtcat-bank/1 document.
    Each item's declared fields are checked (`ItemDoc`); the body loads as given, one item
    made a list of one, and the store checks the rest. The OpenAPI document states it as
    a oneOf (`api.openapi`)."""

    def load(self, data, **kwargs):
        payload = [data] if isinstance(data, dict) and "format" not in data else data
        if isinstance(payload, dict):
            if payload["format"] != "irtcat-bank/1":
                raise ValidationError({"format": ["must be irtcat-bank/1"]})
            items = payload.get("items")
        else:
            items = payload
        if not isinstance(items, list) or not items:
            raise ValidationError({"items": ["one item or more: an object, a non-empty list, "
                                             "or an irtcat-bank/1 document"]})
        errors = {}
        for position, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                try:
                    ItemDoc().load(item)
                except ValidationError as error:
                    errors[position] = error.messages
        if errors:
            raise ValidationError({"items": errors})
        return payload


class ReportQuery(Schema):
    """?dif_job=ID: a done DIF job (POST /v1/dif) whose table the report shows."""

    dif_job = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1),
                      metadata={"description": "a done DIF job's id (POST /v1/dif): the "
                                               "report gets a DIF section"})


class StandardQuery(Schema):
    """?standard=CODE: one standard's entries (a repeated one: the first)."""

    standard = fields.String(validate=ID)


class ImportSummary(Strict):
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    versions = fields.List(fields.Dict(), required=True)


def _seconds(description):
    """An optional number of seconds, one to a year."""
    return fields.Integer(load_default=None, allow_none=True, strict=True,
                          validate=validate.Range(min=1, max=366 * 86400),
                          metadata={"description": description})


class TestDoc(Strict):
    __test__ = False

    id = fields.String(validate=ID)
    title = fields.String(validate=NAME)
    standards = fields.List(fields.String(validate=ID), required=True,
                            validate=validate.Length(min=1, max=100))
    config = fields.Dict(load_default=dict,
                         metadata={"description": "the CAT configuration of FORMATS.md"})
    public = Bool(load_default=False,
                            metadata={"description": "listed on the learner page at / and "
                                                     "startable there without a key"})
    feedback = Bool(load_default=False,
                              metadata={"description": "a finished session shows its learner "
                                                       "θ, levels and the decision"})
    time_limit = _seconds("seconds a session may last; an answer after it is refused (409 "
                          "time_limit) and the session finished, scored on what was answered")
    token_ttl = _seconds("seconds a session token lives (default: the time limit plus 4 "
                         "hours, or 24 hours untimed)")
    finished_token_ttl = _seconds("seconds a finished session's token still reads its final "
                                  "state (default 900)")
    public_pool = fields.String(load_default="practice",
                                validate=validate.OneOf(("practice", "all")),
                                metadata={"description": "what a public test draws: items "
                                                         "tagged practice (default), or all "
                                                         "its standards' items"})


class PublicStandard(Strict):
    code = fields.String(required=True)
    title = fields.String(required=True)


class PublicTest(Strict):
    """A test as the learner page lists it: no configuration."""

    __test__ = False

    id = fields.String(required=True)
    title = fields.String(required=True)
    standards = fields.List(fields.Nested(PublicStandard), required=True)
    max_items = fields.Integer(required=True)


class PublicSessionStart(Strict):
    test_id = fields.String(required=True, validate=ID)


def _too_many_attributes():
    raise ValidationError("at most 8 attributes")


class SessionStart(Strict):
    test_id = fields.String(required=True, validate=ID)
    learner_id = fields.String(required=True, validate=NAME)
    attributes = fields.Dict(
        keys=fields.String(), values=fields.String(validate=validate.Length(min=1, max=64)),
        validate=lambda attributes: len(attributes) <= 8 or _too_many_attributes(),
        metadata={"maxProperties": 8,
                  "description": "the learner's attributes for DIF analyses (POST /v1/dif), "
                                 "e.g. {\"group\": \"F\"}: at most 8 names matching "
                                 "^[a-z][a-z0-9_]{0,31}$ (422 otherwise: OpenAPI 3.0 cannot "
                                 "constrain an object's keys), each a string of 1 to 64 "
                                 "characters; stored with the session, never returned"})


class DifRequest(Strict):
    standard = fields.String(required=True, validate=ID)
    attribute = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z][a-z0-9_]{0,31}$"), metadata={"description": "the learner attribute "
                                                             "holding each person's group"})
    focal = fields.String(required=True, validate=validate.Length(min=1, max=64),
                          metadata={"description": "the focal group's value; every other "
                                                   "value is the reference group"})
    method = fields.String(load_default="mh", validate=validate.OneOf(("mh", "lr")),
                           metadata={"description": "mh: Mantel-Haenszel matched on theta "
                                                    "(default); lr: likelihood ratio, for "
                                                    "dense data only"})
    purify = Bool(load_default=False, metadata={"description": "iterative purification of "
                                                               "the matching (mh)"})


class ItemView(Strict):
    """An item as a learner sees it, and nothing more."""

    item_id = fields.String(required=True)
    stem = fields.String(required=True)
    options = fields.List(fields.Nested(Option), required=True)
    position = fields.Integer(required=True)


class SessionState(Strict):
    session_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("active", "finished")))
    position = fields.Integer(required=True)
    max_items = fields.Integer(metadata={"description": "the test's most items"})
    item = fields.Nested(ItemView, allow_none=True, required=True)
    result = fields.Nested(lambda: Feedback(),
                           metadata={"description": "once finished, when the test gives "
                                                    "feedback"})


class SessionStarted(SessionState):
    token = fields.String(required=True,
                          metadata={"description": "for this session only: give it to the "
                                                   "learner's browser"})
    token_expires_at = fields.DateTime(metadata={"description": "when the token stops "
                                                                "working"})
    deadline = fields.DateTime(allow_none=True,
                               metadata={"description": "when the time limit runs out "
                                                        "(null: untimed)"})


class ResponseValue(fields.Field):
    """An option id (string) or a category (non-negative integer)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) <= 200:
            return value                    # whether it is an option: 422 from the scorer
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31:
            return value
        raise ValidationError("an option id (string) or a category (integer)")


class Answer(Strict):
    item_id = fields.String(required=True, validate=ID)
    response = ResponseValue(required=True, metadata={"oneOf": [
        {"type": "string", "maxLength": 200},
        {"type": "integer", "minimum": -(2**31 - 1), "maximum": 2**31 - 1}]})


class StandardResult(Strict):
    code = fields.String(required=True)
    title = fields.String()
    theta = fields.Float(allow_none=True)
    se = fields.Float(allow_none=True)
    level = fields.String(allow_none=True)


class Decision(Strict):
    cut = fields.Float(required=True)
    method = fields.String(required=True)
    # "pass" is a Python keyword: declared through data_key.
    passed = fields.Boolean(required=True, data_key="pass", attribute="pass")


def _role_fit():
    from .careers_schemas import RoleFit  # imported late: that module imports this one
    return RoleFit()


class Feedback(Strict):
    """What a learner sees of a finished session: no item scores."""

    theta = fields.Float(allow_none=True)
    se = fields.Float(allow_none=True)
    standards = fields.List(fields.Nested(StandardResult), required=True)
    decision = fields.Nested(Decision, allow_none=True)
    roles = fields.List(fields.Nested(_role_fit), metadata={
        "description": "the career framework's job roles: met, or the gap per standard"})
    thetas, composite = mcat_schemas.thetas_field(), mcat_schemas.composite_field()


class ScoredAnswer(Strict):
    item_id = fields.String(required=True)
    response = fields.Raw(required=True)
    score = fields.Integer(required=True, allow_none=True,
                           metadata={"description": "always null: an item's score would "
                                                    "tell its answer key"})


class Result(Strict):
    session_id = fields.String(required=True)
    status = fields.String(required=True)
    theta = fields.Float(allow_none=True)
    se = fields.Float(allow_none=True)
    standards = fields.List(fields.Nested(StandardResult), required=True)
    decision = fields.Nested(Decision, allow_none=True)
    roles = fields.List(fields.Nested(_role_fit), metadata={
        "description": "the career framework's job roles: met, or the gap per standard"})
    thetas, composite = mcat_schemas.thetas_field(), mcat_schemas.composite_field()
    responses = fields.List(fields.Nested(ScoredAnswer), required=True)


class ScoredItem(Strict):
    item_id = fields.String(required=True, validate=ID)
    response = fields.Integer(required=True, strict=True,
                              validate=validate.Range(min=0, max=100),
                              metadata={"description": "the item's score: 0 or 1, or the "
                                                       "category of a polytomous item; "
                                                       "never an option"})


class ScoreRequest(Strict):
    responses = fields.List(fields.Nested(ScoredItem), required=True,
                            validate=validate.Length(min=MIN_SCORED_ITEMS, max=1000),
                            metadata={"uniqueItems": True,
                                      "description": "each item once (400 otherwise)"})
    method = fields.String(load_default="eap", validate=validate.OneOf(METHODS))


class Score(Strict):
    theta = fields.Float(allow_none=True, metadata={
        "description": f"rounded to {SCORE_DECIMALS} decimal"})
    se = fields.Float(allow_none=True, metadata={
        "description": "always null here: an SE per answer pattern tells a prober the "
                       "items' slopes (docs/API.md)"})
    standards = fields.List(fields.Nested(StandardResult), required=True, metadata={
        "description": f"a standard with fewer than {MIN_SCORED_ITEMS} items scored has "
                       "null theta, se and level"})


class UploadRow(Strict):
    person_id = fields.String(required=True, validate=NAME)
    item_id = fields.String(required=True, validate=ID)
    response = Integer(required=True, validate=validate.Range(min=0, max=100))


class CalibrationRequest(Strict):
    standard = fields.String(required=True, validate=ID)
    model = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(MODELS))
    source = fields.String(load_default="log", validate=validate.OneOf(("log", "upload")))
    data = fields.List(fields.Nested(UploadRow), validate=validate.Length(max=200_000),
                       metadata={"uniqueItems": True,
                                 "description": "with source upload: the responses, one a "
                                                "person and item (400 otherwise)"})
    anchored = Bool(load_default=False)
    m_step = fields.String(load_default="mirt", validate=validate.OneOf(M_STEPS),
                           metadata={"description": "mirt: R mirt's EM path (default); newton: "
                                                    "exact M-steps"})

    @validates_schema
    def _data_with_upload(self, data, **kwargs):
        if (data["source"] == "upload") != ("data" in data):
            raise ValidationError("data is given exactly when source is upload", "data")


class Calibration(Strict):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    standard = fields.String()
    model = fields.String(allow_none=True)
    source = fields.String()
    error = fields.String(allow_none=True)
    n_responses = fields.Integer(allow_none=True)
    version = fields.Integer(allow_none=True)
    result = fields.Dict(allow_none=True,
                         metadata={"description": "the irtcat-bank/1 document, with fit"})
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)


class Publication(Strict):
    standard = fields.String(required=True)
    version = fields.Integer(required=True)
    published = fields.Boolean(required=True)
    current = fields.Boolean(required=True)
    created_at = fields.String()
    published_at = fields.String(allow_none=True)
    calibration_run = fields.Integer(allow_none=True)


class SimulationRequest(Strict):
    test_id = fields.String(required=True, validate=ID)
    examinees = Integer(load_default=1000, validate=validate.Range(min=1, max=20_000))
    seed = Integer(load_default=1, validate=validate.Range(min=0, max=2**32 - 1))
