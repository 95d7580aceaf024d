"""The experiment a config describes: read, checked and resolved once (:mod:`imfn.experiment.plan`)."""

from imfn.experiment.config import ConfigError, deep_merge, read_config
from imfn.experiment.plan import Experiment, SourceGrid

__all__ = ["ConfigError", "Experiment", "SourceGrid", "deep_merge", "read_config"]
