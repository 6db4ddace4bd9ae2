"""Hyperparameter sweeps: one search-space format (Hydra's override grammar) for Optuna and W&B sweeps,
k-fold cross-validation inside a trial, and pruning from inside Lightning."""
