"""Random designs: every feasible one runs with no violation, every infeasible one is refused.

A seeded loop (numpy's generator; every run sees the same designs) draws CAT
configurations over random two- or three-standard banks with pretest items: test
lengths, stopping rules, classification, content minimums and maximums, enemy pairs,
selection criteria, exposure control (Sympson-Hetter with random K, some of them 0),
pretest slots. A design is feasible by construction (content minimums sum to at most
max_items, maximums leave max_items, a controlled exposure target at or above the
closed-form bound max_items / operational items and every content minimum / its
group's size); its run must report 0 in every "violations" count. It is then broken in
one drawn way and must be refused with the reason of that way.
"""

import numpy as np
import pytest

from irtcat.api.simulation_report import simulate_and_report
from irtcat.delivery.cat_config import design_from_config
from irtcat.itembank import DataFormatError, bank_from_document

N_DESIGNS = 200
EXAMINEES = 40
SELECTION = ("mfi", "kl", "random", "astrat")
EXPOSURE = ("none", "randomesque", "sympson-hetter", "item-eligibility")


def random_bank(rng):
    """(bank, {standard: operational item count}, operational count)."""
    n_items = int(rng.integers(20, 70))
    n_pretest = int(rng.integers(0, 5))
    codes = [f"S{k}" for k in range(int(rng.integers(2, 4)))]
    standard = [codes[j % len(codes)] for j in range(n_items)]
    items = [{"id": f"I{j}", "standard": standard[j], "model": "2pl",
              "a": round(float(rng.lognormal(0.0, 0.3)), 3),
              "b": round(float(rng.normal()), 3),
              **({"status": "pretest"} if j < n_pretest else {})} for j in range(n_items)]
    sizes = {code: sum(1 for j in range(n_pretest, n_items) if standard[j] == code)
             for code in codes}
    return bank_from_document({"format": "irtcat-bank/1", "items": items}), sizes, \
        n_items - n_pretest


def feasible_config(rng, bank, sizes, n_operational):
    """A configuration every rule of which a run can keep."""
    max_items = int(rng.integers(2, min(20, n_operational) + 1))
    min_items = int(rng.integers(1, max_items + 1))
    config = {"stop": {"min_items": min_items, "max_items": max_items,
                       "se": [None, 0.3, 0.5][int(rng.integers(3))]},
              "selection": {"method": SELECTION[int(rng.integers(len(SELECTION)))]},
              "pretest": {"count": int(rng.integers(0, 3))}}
    if rng.random() < 0.3:
        config["stop"]["classification"] = {"cut": round(float(rng.normal()), 2)}
    content, budget = [], max_items
    for code, size in sizes.items():
        if rng.random() < 0.6 and budget > 0:
            low = int(rng.integers(0, min(size, budget, 6) + 1))
            budget -= low
            rule = {"standard": code, "min": low}
            if rng.random() < 0.4:
                rule["max"] = int(rng.integers(low, size + 1))
            content.append(rule)
    capped = {rule["standard"]: rule["max"] for rule in content if "max" in rule}
    room = sum(capped.get(code, size) for code, size in sizes.items())
    if room < max_items:                     # maximums must leave a full-length test
        for rule in content:
            rule.pop("max", None)
    config["content"] = content
    if rng.random() < 0.3 and n_operational - 2 >= max_items:
        operational = [item["id"] for item in bank.items if item.get("status") != "pretest"]
        picks = rng.choice(len(operational), 4, replace=False)
        config["enemies"] = [[operational[picks[0]], operational[picks[1]]],
                             [operational[picks[2]], operational[picks[3]]]]
    method = EXPOSURE[int(rng.integers(len(EXPOSURE)))]
    bound = max([max_items / n_operational]
                + [rule["min"] / sizes[rule["standard"]] for rule in content])
    target = np.ceil((bound + float(rng.uniform(0, 0.5))) * 1e4) / 1e4   # rounded up
    config["exposure"] = {"method": method, "target": min(1.0, float(target))}
    if method == "sympson-hetter":
        k = np.where(rng.random(len(bank.items)) < 0.3, 0.0, rng.random(len(bank.items)))
        config["exposure"]["parameters"] = {item["id"]: round(float(value), 3)
                                            for item, value in zip(bank.items, k, strict=True)}
    return config


def broken_config(rng, config, sizes, n_operational):
    """(the configuration broken in one drawn way, the words its refusal must hold)."""
    stop = dict(config["stop"])
    way = int(rng.integers(4))
    if way == 0:        # more minimum items than operational items
        stop["min_items"] = stop["max_items"] = n_operational + int(rng.integers(1, 4))
        return {**config, "stop": stop}, f"stop.min_items {stop['min_items']} is over"
    if way == 1:        # content minimums over max_items
        codes = sorted(sizes)[:2]
        stop["max_items"] = max(stop["max_items"], 2)
        stop["min_items"] = min(stop["min_items"], stop["max_items"])
        low = stop["max_items"] // 2 + 1
        if low > min(sizes[code] for code in codes):
            return broken_config(rng, config, sizes, n_operational)
        return {**config, "stop": stop,
                "content": [{"standard": code, "min": low} for code in codes]}, \
            "are over stop.max_items"
    if way == 2:        # a controlled exposure target under the bound
        stop.update(min_items=stop["max_items"], se=None)
        stop.pop("classification", None)
        bound = stop["max_items"] / n_operational
        target = round(bound * float(rng.uniform(0.05, 0.9)), 6)
        if target <= 0:
            return broken_config(rng, config, sizes, n_operational)
        return {**config, "stop": stop, "content": [], "enemies": [],
                "exposure": {"method": "item-eligibility", "target": target}}, \
            "exposure.target"
    code = sorted(sizes)[0]   # a content minimum over its standard's operational items
    return {**config, "content": [{"standard": code, "min": sizes[code] + 1}]}, \
        f"content {code}: min {sizes[code] + 1} is over"


def test_random_designs():
    rng = np.random.default_rng(2026)
    tried = 0
    for _ in range(N_DESIGNS):
        bank, sizes, n_operational = random_bank(rng)
        config = feasible_config(rng, bank, sizes, n_operational)
        design = design_from_config(config, bank)         # feasible: never refused
        seed = int(rng.integers(1 << 30))
        run_rng = np.random.default_rng(seed)
        result = simulate_and_report(bank.params, design, run_rng,
                                     run_rng.normal(size=EXAMINEES), seed)
        assert result["violations"] == {"content": 0, "length": 0, "ended_early": 0}, config
        broken, words = broken_config(rng, config, sizes, n_operational)
        with pytest.raises(DataFormatError) as refused:
            design_from_config(broken, bank)
        assert "cannot be honoured" in str(refused.value) and words in str(refused.value), \
            (broken, str(refused.value))
        tried += 1
    assert tried == N_DESIGNS
