"""cftune core: data, confidence, splits, ALS / BPR training, evaluation and artifacts.

A pure library: it imports neither Optuna nor MLflow. ``search/`` plugs pruning and tracking into the
per-iteration callbacks exposed here.
"""

from core.errors import CftuneError, ConfigError, DataError, ModelFitError, StopTraining
from core.interactions import Interactions

__all__ = ["CftuneError", "ConfigError", "DataError", "Interactions", "ModelFitError", "StopTraining"]
