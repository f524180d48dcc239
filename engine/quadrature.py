"""Quadrature grids over theta for EAP scoring and marginal likelihoods."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Grid:
    """Equally spaced nodes with normal prior weights.

    Attributes
    ----------
    nodes : ndarray of shape (n_nodes,)
    log_weights : ndarray of shape (n_nodes,)
        log of the N(mean, sd) density at the nodes, normalised to sum to 1
        (mirt's rectangular quadrature).
    """

    nodes: np.ndarray
    log_weights: np.ndarray

    @property
    def weights(self):
        return np.exp(self.log_weights)


def normal_grid(n_nodes=121, theta_range=(-6.0, 6.0), mean=0.0, sd=1.0):
    """Equally spaced grid on `theta_range` weighted by the N(mean, sd) density.

    mirt's defaults are 121 nodes on [-6, 6] for scoring and 61 for calibration.
    """
    lower, upper = theta_range
    nodes = np.linspace(lower, upper, n_nodes)
    log_density = -0.5 * ((nodes - mean) / sd) ** 2
    log_weights = log_density - np.log(np.sum(np.exp(log_density - log_density.max()))) \
        - log_density.max()
    return Grid(nodes, log_weights)
