"""Loading patterns written in R mirt's `mirt.model` syntax.

    F1 = i01-i15; F2 = i16-i30; F3 = i31-i45
    COV = F1*F2*F3

Statements are separated by ``;`` or newlines. A factor statement lists its
items by name or 1-based position, comma-separated, with ``a-b`` ranges of
either (``1,3,5-7``; ``i01-i15`` runs from i01 to i15 in the data's item
order). ``COV`` lists products of factors, comma-separated; every pair of
factors within one product gets a free correlation (``F1*F2*F3``: all three).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class FactorSpec:
    """A parsed loading pattern.

    factors : list of str, shape (m,)
    loadings : bool ndarray (n_items, m), True where a slope is free
    free_correlation : bool ndarray (m, m), symmetric, False on the diagonal
    text : the specification as given
    """

    factors: list
    loadings: np.ndarray
    free_correlation: np.ndarray
    text: str

    def standards(self, general=False):
        """Per item, its factor's name under simple structure, else None: list (n_items,).
        With `general` the first factor is a bifactor's general one: an item's
        standard is its specific factor (None for the general factor alone)."""
        if general:
            return [self.factors[1 + int(np.flatnonzero(row[1:])[0])] if row[1:].any()
                    else None for row in self.loadings]
        return [self.factors[int(np.flatnonzero(row)[0])] if row.sum() == 1 else None
                for row in self.loadings]


def _position(token, item_names, index):
    if token in index:
        return index[token]
    if token.isdigit():
        position = int(token)
        if 1 <= position <= len(item_names):
            return position - 1
        raise ValueError(f"item position {position} is outside 1-{len(item_names)}")
    raise ValueError(f"unknown item {token!r}")


def _items(listing, item_names, index):
    chosen = []
    for token in (part.strip() for part in listing.split(",")):
        if not token:
            continue
        if token in index or "-" not in token:
            chosen.append(_position(token, item_names, index))
            continue
        first, _, last = (part.strip() for part in token.partition("-"))
        start, stop = _position(first, item_names, index), _position(last, item_names, index)
        if stop < start:
            raise ValueError(f"item range {token!r} runs backwards")
        chosen.extend(range(start, stop + 1))
    return chosen


def parse_factor_spec(text, item_names, every_item=True):
    """Parse `text` against the data's item names (in column order) -> FactorSpec.

    Raises ValueError naming the problem: an unknown item or factor, an empty
    factor, an item on no factor (unless not `every_item`: a bifactor model's
    specific groups), a malformed statement.
    """
    item_names = [str(name) for name in item_names]
    index = {name: j for j, name in enumerate(item_names)}
    statements = [part.strip() for part in re.split(r"[;\n]", text) if part.strip()]
    factors, members, cov_terms = [], [], []
    for statement in statements:
        name, equals, listing = (part.strip() for part in statement.partition("="))
        if not equals or not _NAME.match(name):
            raise ValueError(f"cannot read {statement!r}: expected NAME = items")
        if name.upper() == "COV":
            cov_terms.extend(term.strip() for term in listing.split(",") if term.strip())
            continue
        if name in factors:
            raise ValueError(f"factor {name!r} is defined twice")
        items = _items(listing, item_names, index)
        if not items:
            raise ValueError(f"factor {name!r} has no items")
        factors.append(name)
        members.append(items)
    if not factors:
        raise ValueError("the specification defines no factor")
    loadings = np.zeros((len(item_names), len(factors)), dtype=bool)
    for column, items in enumerate(members):
        loadings[items, column] = True
    orphans = [item_names[j] for j in np.flatnonzero(~loadings.any(axis=1))]
    if orphans and every_item:
        raise ValueError(f"item {orphans[0]!r} is on no factor"
                         + (f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""))
    free = np.zeros((len(factors), len(factors)), dtype=bool)
    for term in cov_terms:
        names = [part.strip() for part in term.split("*")]
        unknown = [part for part in names if part not in factors]
        if unknown:
            raise ValueError(f"COV names unknown factor {unknown[0]!r}")
        positions = [factors.index(part) for part in names]
        for a in positions:
            for b in positions:
                if a != b:
                    free[a, b] = True
    return FactorSpec(factors, loadings, free, text)
