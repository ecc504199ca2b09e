"""Training and inference: `Model` (compile, fit, evaluate, predict, weights), its losses,
metrics, optimizers, callbacks and the `PatchSampler`.

`Model` (``dilnet.model.model``) is the one facade; its methods delegate to the modules behind
it, as in Keras: ``dilnet.model.trainer`` (the loops of ``fit``, ``evaluate`` and ``predict``,
the compiled functions and the checks of every input), ``dilnet.model.saving`` (weights and
whole-model checkpoints, fine-tuning with ``skip_mismatch``, `load_model`) and
`dilnet.model.device` (where the functions run).
"""

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
from .contract import InputContract
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
    "InputContract",
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
