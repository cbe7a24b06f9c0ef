"""Fitting: the objective, batches and masks, the schedule, the SVI loop, the run directory, posterior draws."""
