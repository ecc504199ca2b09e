"""Training and inference: `Model` (compile, fit, evaluate, predict, weights), its losses,
metrics, optimizers, callbacks and the `PatchSampler`."""

from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    NaNGuard,
    ReduceLROnPlateau,
    cosine_decay,
    step_decay,
)
from .data import PatchSampler
from .losses import CrossEntropy, CrossEntropyDice, Dice, Loss
from .metrics import Accuracy, Metric
from .metrics import Dice as DiceMetric
from .model import DEFAULT_MODE, Model, load_model
from .optimizers import Optimizer

__all__ = [
    "DEFAULT_MODE",
    "Accuracy",
    "CSVLogger",
    "Callback",
    "CrossEntropy",
    "CrossEntropyDice",
    "Dice",
    "DiceMetric",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "Loss",
    "Metric",
    "Model",
    "ModelCheckpoint",
    "NaNGuard",
    "Optimizer",
    "PatchSampler",
    "ReduceLROnPlateau",
    "cosine_decay",
    "load_model",
    "step_decay",
]
