"""mmemo's Optuna sweeper for Hydra (``hydra/sweeper=optuna``); see docs/sweeps.md.

It lives in Hydra's ``hydra_plugins`` namespace because Hydra only accepts sweepers
from there. It replaces hydra-optuna-sweeper, which pins optuna<3.
"""
