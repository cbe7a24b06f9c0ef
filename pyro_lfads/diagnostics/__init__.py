"""Diagnostics: importance weights, posterior predictive checks, InferenceData, figures and the report."""
