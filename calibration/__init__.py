"""Calibration of item parameters from response data (MML-EM, priors, linking, fit)."""
