"""Linking bank documents: a bank moved onto the scale of another, as a new bank.

The constants come from `irtcat.calibration.linking`, which works on the items'
`ItemParameters`; here every item document of the bank moves with them (a, b and
their standard errors), and so do its population and its linking record.
"""

from __future__ import annotations

from irtcat.calibration.linking import FIXED_SLOPE_MODELS, METHODS, link_parameters

from .io import bank_from_document, bank_to_document


def _scaled(value, factor, shift=0.0):
    """``factor * value + shift`` for a number or a list of numbers; None stays None."""
    if value is None:
        return None
    if isinstance(value, list):
        return [None if v is None else factor * v + shift for v in value]
    return factor * value + shift


def _transform_item(item, scale, shift):
    """A copy of one item document moved to the old scale (a, b and their se).

    The slope-intercept values of the calibration describe the new scale; they
    are dropped rather than left contradicting the moved a and b.
    """
    item = {key: value for key, value in item.items()
            if key not in ("slope_intercept", "se_slope_intercept")}
    if "a" in item:
        item["a"] = _scaled(item["a"], 1.0 / scale)
    item["b"] = _scaled(item["b"], scale, shift)
    if isinstance(item.get("se"), dict):
        se = dict(item["se"])
        if "a" in se:
            se["a"] = _scaled(se["a"], 1.0 / scale)
        if "b" in se:
            se["b"] = _scaled(se["b"], scale)
        item["se"] = se
    return item


def transform_bank(bank, constants, *, to=None):
    """A new bank with every item moved from the new scale to the old one.

    Each item's ``a`` becomes ``a / A`` and its ``b`` (every threshold or
    step) ``A * b + B``; in ``se``, ``a`` becomes ``se_a / A`` and ``b``
    ``se_b * A`` (other entries, c and u unchanged). The population becomes
    ``mean_old = A * mean_new + B``, ``sd_old = A * sd_new``. The document
    gets a top-level record ``"linking": {"method", "A", "B", "n_common",
    "to"}``; a previous linking record is kept under ``"previous"``. The
    result is validated as an `irtcat-bank/1` document.

    Parameters
    ----------
    bank : ItemBank on the new scale
    constants : LinkingConstants
    to : str, optional
        A label of the target (old) scale, e.g. the old bank's file or version.

    Returns
    -------
    ItemBank

    Raises
    ------
    ValueError
        If ``A != 1`` and the bank holds a `rasch` or `pcm` item, whose a is
        fixed at 1 (link such banks with mean-mean, which gives A = 1).
    """
    scale, shift = constants.A, constants.B
    if scale != 1.0:
        for item in bank.items:
            if item["model"] in FIXED_SLOPE_MODELS:
                raise ValueError(f"item {item['id']!r}: a {item['model']} item has a = 1 and "
                                 f"allows only a shift (A = 1), got A = {scale:g}")
    document = bank_to_document(bank)
    document["items"] = [_transform_item(item, scale, shift) for item in bank.items]
    document["population"] = {"mean": scale * bank.population["mean"] + shift,
                              "sd": scale * bank.population["sd"]}
    record = {"method": constants.method, "A": scale, "B": shift,
              "n_common": constants.n_common, "to": to}
    if "linking" in bank.extra:
        record["previous"] = bank.extra["linking"]
    document["linking"] = record
    return bank_from_document(document)


def link_banks(new_bank, old_bank, method, *, to=None, theta=None, weights=None):
    """Link `new_bank` to the scale of `old_bank` through their common items.

    Parameters
    ----------
    new_bank, old_bank : ItemBank
        Common items are those whose ids appear in both, taken in new-bank order.
    method : {"mean-mean", "mean-sigma", "haebara", "stocking-lord"}
    to : str, optional
        Label of the old scale for the linking record (see `transform_bank`).
    theta, weights : array_like of shape (n_theta,), optional
        Points on the old scale for haebara and stocking-lord; by default 61
        points on ``mean +- 4 sd`` of the old bank's population, weighted by
        its normal density (61 points on [-4, 4] for the default N(0, 1)).

    Returns
    -------
    constants : LinkingConstants
    bank : ItemBank
        `new_bank` moved to the old scale (`transform_bank`).

    Raises
    ------
    ValueError
        One line: an unknown method, fewer than 2 common items, or a common
        item whose model or number of categories differs between the banks.
    """
    old_ids = set(old_bank.item_ids)
    common = [item_id for item_id in new_bank.item_ids if item_id in old_ids]
    if method not in METHODS:
        raise ValueError(f"unknown linking method {method!r}; expected one of "
                         f"{', '.join(METHODS)}")
    if len(common) < 2:
        raise ValueError(f"linking needs at least 2 common items, the banks share {len(common)}")
    constants = link_parameters(new_bank.params.subset(new_bank.index_of(common)),
                                old_bank.params.subset(old_bank.index_of(common)), method,
                                names=common, population=old_bank.population, theta=theta,
                                weights=weights)
    return constants, transform_bank(new_bank, constants, to=to)


__all__ = ["link_banks", "transform_bank"]
