"""Canonical names of models and scoring methods, and the spellings read as them.

irtcat writes its own lower-case names (``2pl``, ``grm``, ``eap``); a user of
R's mirt or catR types theirs (``2PL``, ``graded``, ``EAP``, catR's ``BM``).
Every reader of a name (the command line, the CAT configuration) passes it
through `canonical_model` or `canonical_method`, so both accept the same
spellings, in any case.

mirt's ``itemtype`` values that name a model irtcat fits: ``Rasch``, ``2PL``,
``3PL``, ``4PL``, ``graded`` (Samejima's graded response model), ``gpcm`` and
``gpcmIRT`` (the same model, IRT-parameterised) and ``nominal`` (Bock's nominal
response model, irtcat's ``nominal``). mirt's ``Rasch`` is also its
partial credit model on polytomous items: irtcat names that one ``pcm``.
mirt has no ``1PL`` itemtype (a 2PL with equal slopes); irtcat's ``1pl`` is it.
"""

from __future__ import annotations

from .estimation import METHODS
from .models import MODELS

MODEL_ALIASES = {"graded": "grm", "gpcmIRT": "gpcm"}
"""mirt's model names that differ from irtcat's (matched in any case)."""

METHOD_ALIASES = {"BM": "map", "WL": "wle"}
"""catR's scoring methods that differ from irtcat's (BM: Bayes modal; any case)."""


def canonical_model(name, strict=True):
    """irtcat's name of the model `name` (any case; mirt's spellings too).

    An unknown name: ValueError with one line listing the accepted names, or with
    ``strict=False`` `name` itself, for a caller that reports it in its own words."""
    return _canonical(name, MODELS, MODEL_ALIASES, "model", strict)


def canonical_method(name, methods=METHODS, strict=True):
    """irtcat's name of the scoring method `name` (any case; mirt's and catR's
    spellings too), one of `methods`; an unknown one as in `canonical_model`."""
    return _canonical(name, methods, METHOD_ALIASES, "scoring method", strict)


def _canonical(name, names, aliases, what, strict):
    if isinstance(name, str):
        folded = name.strip().lower()
        folded = {alias.lower(): target for alias, target in aliases.items()}.get(folded, folded)
        if folded in names:
            return folded
    if not strict:
        return name
    accepted = ", ".join(names)
    also = [alias for alias, target in aliases.items() if target in names]
    if also:
        accepted += f" (or {', '.join(also)}; any case)"
    raise ValueError(f"unknown {what} {name!r}; expected one of {accepted}")
