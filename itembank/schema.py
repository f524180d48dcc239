"""The store's tables (SQLAlchemy 2): what a standards body owns.

- ``standards``: the skill framework, a tree through ``parent_code``, each node
  with proficiency levels (θ cut scores, ascending); a standard without levels
  uses its parent's.
- ``items``: content, answer key, status and tags of each item; no parameters.
- ``bank_versions`` and ``bank_version_items``: numbered calibrations of one
  standard; a version is immutable once published.
- ``publications``: each time a version was made the one new sessions use; the
  latest wins, so rolling back publishes an earlier version again.
- ``calibration_runs``: inputs, options, status and result of each calibration.
- ``responses``: the response log, raw material of the next calibration; one row
  per (session, item), which the database enforces.
- ``jobs``: long admin work queued for the worker processes (calibrations,
  simulations, reports, exports), with its result once done.

Every schema change goes through an Alembic migration in ``itembank/migrations``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ITEM_STATUSES = ("pretest", "operational", "retired")
RUN_STATUSES = ("queued", "running", "done", "failed")

NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "ck": "ck_%(table_name)s_%(constraint_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
          "pk": "pk_%(table_name)s"}


def utc_now():
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Standard(Base):
    __tablename__ = "standards"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("standards.code"), index=True)
    levels: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # the CASE CFItem identifier (migration 0010): None until one is imported or given,
    # then `itembank.standards.case_identifier` derives a stable one from the code
    case_identifier: Mapped[str | None] = mapped_column(String(64))


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (CheckConstraint(f"status IN {ITEM_STATUSES}", name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)     # import order, for exports
    standard_code: Mapped[str] = mapped_column(ForeignKey("standards.code"), index=True)
    model: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict | None] = mapped_column(JSON)
    key: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="operational")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    enemies: Mapped[list] = mapped_column(JSON, default=list)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class CalibrationRun(Base):
    __tablename__ = "calibration_runs"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES}", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    standard_code: Mapped[str] = mapped_column(ForeignKey("standards.code"), index=True)
    model: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    n_responses: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # "host:pid" of the process that runs it (migration 0004)
    runner: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BankVersion(Base):
    __tablename__ = "bank_versions"
    __table_args__ = (UniqueConstraint("standard_code", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    standard_code: Mapped[str] = mapped_column(ForeignKey("standards.code"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    population_mean: Mapped[float] = mapped_column(Float, default=0.0)
    population_sd: Mapped[float] = mapped_column(Float, default=1.0)
    calibration: Mapped[dict | None] = mapped_column(JSON)
    # The items' parameters as columns (ids, models, a, b padded with null, c, u,
    # status): what delivery loads, in one read. Written once, like the version.
    arrays: Mapped[dict] = mapped_column(JSON, deferred=True)
    calibration_run_id: Mapped[int | None] = mapped_column(ForeignKey("calibration_runs.id"))
    # migration 0015: a multidimensional version's ``dimensions`` (factors, structure,
    # mean, correlation, se, rotation) as its bank document states them; null otherwise
    dimensions: Mapped[dict | None] = mapped_column(JSON)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BankVersionItem(Base):
    """One item's parameters in one bank version (model, a, b, c, u, se, fit)."""

    __tablename__ = "bank_version_items"

    version_id: Mapped[int] = mapped_column(ForeignKey("bank_versions.id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[dict] = mapped_column(JSON)


class Publication(Base):
    """A version made current for its standard; the latest publication wins, so
    rolling back is publishing an earlier version again."""

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    standard_code: Mapped[str] = mapped_column(ForeignKey("standards.code"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("bank_versions.id"))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Response(Base):
    """One answer: the raw response as given, its score, and the bank version it was
    delivered under. Pretest answers are logged but were not scored into θ."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("session_id", "item_id"),
                      Index("ix_responses_item_id_id", "item_id", "id"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64))
    learner_id: Mapped[str] = mapped_column(String(200), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    raw_response: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer)
    responded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    bank_version_id: Mapped[int | None] = mapped_column(ForeignKey("bank_versions.id"))
    pretest: Mapped[bool] = mapped_column(Boolean, default=False)
    # (migration 0015) the decision trace of the step this answer led to (the next item's
    # choice, or why the test ended: `irtcat.engine.session.step_trace`); admin-only
    trace: Mapped[dict | None] = mapped_column(JSON)


# --- delivery (migration 0002) ---------------------------------------------------------

KEY_ROLES = ("admin", "delivery", "cat-client", "employer")
SESSION_STATUSES = ("active", "finished")


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; `prefix` (its first characters) names it."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN {KEY_ROLES}", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Test(Base):
    """A test: which standards it draws from and its CAT configuration (FORMATS.md)."""

    __tablename__ = "tests"
    __test__ = False

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    standards: Mapped[list] = mapped_column(JSON)
    config: Mapped[dict] = mapped_column(JSON)
    # listed on the learner page and startable there without a key
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the learner sees θ, levels and the decision at the end (never item scores)
    feedback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # (migration 0005) seconds a session may last, enforced by the server (None: untimed)
    time_limit: Mapped[int | None] = mapped_column(Integer)
    # seconds a session token lives from the start (None: the default of delivery.py)
    token_ttl: Mapped[int | None] = mapped_column(Integer)
    # seconds a finished session's token still reads its final state
    finished_token_ttl: Mapped[int | None] = mapped_column(Integer)
    # what a public test draws: "practice" (items tagged practice) or "all" (its owner's
    # explicit choice to show operational items on the learner page)
    public_pool: Mapped[str] = mapped_column(String(16), default="practice",
                                             server_default="practice")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class DeliverySession(Base):
    """One learner's sitting of a test. Its state is its responses (the log) plus the
    item chosen next; `versions` pins the bank version of each standard at the start."""

    __tablename__ = "sessions"
    __table_args__ = (CheckConstraint(f"status IN {SESSION_STATUSES}", name="status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    test_id: Mapped[str] = mapped_column(ForeignKey("tests.id"), index=True)
    learner_id: Mapped[str] = mapped_column(String(200), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    versions: Mapped[dict] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    current_item: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=1)
    result: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # (migration 0005) when the time limit runs out, and when the token stops working
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # (migration 0007) the learner's attributes given at the start ({"group": "F"}), for
    # DIF; never shown but to an admin's analyses
    attributes: Mapped[dict | None] = mapped_column(JSON)
    # (migration 0015) the step traces no answer carries: the first item's choice, and the
    # last step of a session ended early; a session's trace is these and its answers'
    steps: Mapped[list | None] = mapped_column(JSON)


# --- queued work (migration 0006) ------------------------------------------------------

JOB_STATUSES = ("queued", "running", "done", "failed")


class Job(Base):
    """Long admin work for the worker processes (`irtcat worker`): its kind and JSON
    payload, who asked, which worker runs it (``host:pid``) and when it last said it was
    alive, how many times it was claimed, and its result (bytes and a media type) or the
    reason it failed. A calibration's job points at its calibration run."""

    __tablename__ = "jobs"
    __table_args__ = (CheckConstraint(f"status IN {JOB_STATUSES}", name="status"),
                      Index("ix_jobs_status_id", "status", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    requester: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(300))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    calibration_run_id: Mapped[int | None] = mapped_column(ForeignKey("calibration_runs.id"))
    result: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    media_type: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- live exposure (migration 0008) -----------------------------------------------------

class ExposureCount(Base):
    """Per test, UTC day and item (operational and pretest apart): how many sessions were
    given the item, and how many drew it ineligible (item eligibility)."""

    __tablename__ = "exposure_counts"

    test_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)      # YYYY-MM-DD
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pretest: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    administered: Mapped[int] = mapped_column(BigInteger, default=0)
    ineligible: Mapped[int] = mapped_column(BigInteger, default=0)


class ExposureSessions(Base):
    """Per test and UTC day, the sessions started: the exposure rates' denominator."""

    __tablename__ = "exposure_sessions"

    test_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    started: Mapped[int] = mapped_column(BigInteger, default=0)


# --- signing keys (migration 0010) ------------------------------------------------------

class SigningKey(Base):
    """A private key of the server, one per purpose (`name`), made on first use."""

    __tablename__ = "signing_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


# --- the CASE framework document (migration 0011) -----------------------------------------

class CaseDocument(Base):
    """The CFDocument of the last CASE package imported: its identifier and its descriptive
    fields (``{"title", "creator", ...}``); at most one row."""

    __tablename__ = "case_documents"

    identifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    fields: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
# --- career framework and talent network (migration 0012) ------------------------------

class JobRole(Base):
    """A job role of the career framework: the level it requires of each standard
    (``{"AI-ML": "proficient"}``, a name among the standard's levels)."""

    __tablename__ = "job_roles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    required: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Consent(Base):
    """A learner's consent to be found by employers: given with a session (the learner is
    that session's `learner_id` under its `key_id`), with the contact handle the learner
    chose; `revoked_at` once revoked. What is shared is the levels of the learner's latest
    passed session, read at each search; `id` is the only identifier employers see."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_active", "revoked_at", "learner_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    learner_id: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    contact: Mapped[str] = mapped_column(String(200))
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
# --- the 1EdTech CAT service's sections and sessions (migration 0013) -------------------

class ImsCatSection(Base):
    """A section a delivery platform created through the 1EdTech CAT service: the test it
    delivers, the key that created it, the configuration it sent (base64 strings as
    sent), and when it ended (None while open)."""

    __tablename__ = "ims_cat_sections"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    test_id: Mapped[str] = mapped_column(ForeignKey("tests.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    configuration: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImsCatSession(Base):
    """An irtcat session started in a section, with the prior data the platform sent."""

    __tablename__ = "ims_cat_sessions"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    section_id: Mapped[str] = mapped_column(ForeignKey("ims_cat_sections.id"), index=True)
    prior_data: Mapped[dict | None] = mapped_column(JSON)
# --- LTI 1.3 (migration 0014) -----------------------------------------------------------

class LtiPlatform(Base):
    """An LMS registered as an LTI 1.3 platform: its issuer and the client id it gave
    this tool, the deployment ids it may launch from (JSON list of strings), and its OIDC
    authorization, OAuth 2 token and JWKS URLs."""

    __tablename__ = "lti_platforms"
    __table_args__ = (UniqueConstraint("issuer", "client_id",
                                       name="uq_lti_platforms_issuer_client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    deployment_ids: Mapped[list] = mapped_column(JSON)
    auth_login_url: Mapped[str] = mapped_column(String(1000))
    token_url: Mapped[str] = mapped_column(String(1000))
    jwks_url: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class LtiNonce(Base):
    """One OIDC login: the `state` and `nonce` sent to the platform, used by one launch
    only (`used_at` set then: the nonce's replay is refused)."""

    __tablename__ = "lti_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(64), unique=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id"))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LtiLaunch(Base):
    """The session an LTI launch started: the platform, its user (`subject`, the id
    token's ``sub``), the deployment, and the AGS line item its score is posted to."""

    __tablename__ = "lti_launches"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id"))
    subject: Mapped[str] = mapped_column(String(255))
    deployment_id: Mapped[str] = mapped_column(String(255))
    lineitem: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


# --- live exposure per θ band (migration 0015) -----------------------------------------

class ExposureBandCount(Base):
    """Per test, θ band and item (for a test with ``exposure.theta_bands``): the sessions
    given the item at a θ in the band, and those that drew it ineligible there."""

    __tablename__ = "exposure_band_counts"

    test_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    band: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pretest: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    administered: Mapped[int] = mapped_column(BigInteger, default=0)
    ineligible: Mapped[int] = mapped_column(BigInteger, default=0)


class ExposureBandSessions(Base):
    """Per test and θ band, the sessions given an item at a θ in the band: the band's
    rates' denominator."""

    __tablename__ = "exposure_band_sessions"

    test_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    band: Mapped[int] = mapped_column(Integer, primary_key=True)
    sessions: Mapped[int] = mapped_column(BigInteger, default=0)
