"""Evaluation: metrics, baselines (smoothing, GPFA), behaviour decoders and the ``evaluate`` table."""
