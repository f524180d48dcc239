"""IRT numerics: response models, ability estimation, quadrature.

Adaptive testing lives in its own modules, imported by those who use them:
`engine.design` (a test design, one settings object per role), the roles
`engine.selection`, `engine.exposure`, `engine.content`, `engine.stopping` and
`engine.ability` (the scoring state), `engine.session` (one examinee's test) and
`engine.simulate` (simulation studies).

Imports numpy and scipy only, none of the other irtcat packages.
"""

from .estimation import (
    METHODS,
    THETA_BOUNDS,
    SumScoreTable,
    ThetaEstimate,
    eap_sum_table,
    estimate_eap,
    estimate_eap_sum,
    estimate_map,
    estimate_ml,
    estimate_theta,
    estimate_wle,
    log_likelihood,
    sum_score_likelihood,
)
from .exceptions import ConvergenceWarning, InvalidParameterError, InvalidResponsesError
from .models import (
    DICHOTOMOUS_MODELS,
    MODELS,
    POLYTOMOUS_MODELS,
    ItemParameters,
    category_log_probability,
    category_probability,
    category_terms,
    expected_score,
    information,
    standard_error,
    test_information,
)
from .quadrature import Grid, normal_grid
from .validation import check_item_parameters, check_responses

__all__ = [
    "DICHOTOMOUS_MODELS", "METHODS", "MODELS", "POLYTOMOUS_MODELS", "THETA_BOUNDS",
    "ConvergenceWarning", "Grid", "InvalidParameterError", "InvalidResponsesError",
    "ItemParameters", "SumScoreTable", "ThetaEstimate", "category_log_probability",
    "category_probability", "category_terms", "check_item_parameters", "check_responses",
    "eap_sum_table", "estimate_eap", "estimate_eap_sum", "estimate_map", "estimate_ml",
    "estimate_theta", "estimate_wle", "expected_score", "information", "log_likelihood",
    "normal_grid", "standard_error", "sum_score_likelihood", "test_information",
]
