"""Analyses of a fit's posterior means, as in the paper's figures: jPCA of factors, embeddings of inferred inputs."""
