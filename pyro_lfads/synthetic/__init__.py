"""The paper's synthetic systems with known ground truth."""
