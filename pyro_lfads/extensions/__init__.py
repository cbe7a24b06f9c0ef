"""Extensions of the core fit: multi-session stitching, streaming inference, population-based tuning."""
