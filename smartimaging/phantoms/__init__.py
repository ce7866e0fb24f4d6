"""Deterministic synthetic cases with ground truth, one module per modality."""
