"""The NumPy core of mlcv: kNN, linear classifiers, the two-layer net, losses, optimizers and metrics (no I/O)."""
from .knn import KNearestNeighbor, vote
from .linear import LinearClassifier, LinearSVM, Softmax
from .losses import LOSSES, softmax_loss, svm_loss
from .metrics import accuracy, confusion_matrix, per_class_accuracy
from .mlp import TwoLayerNet, two_layer_loss
from .model_selection import job_seed, stratified_kfold
from .optim import OPTIMIZERS, init_state

__all__ = [
    "KNearestNeighbor", "vote", "LinearClassifier", "LinearSVM", "Softmax", "LOSSES",
    "svm_loss", "softmax_loss", "TwoLayerNet", "two_layer_loss", "accuracy", "confusion_matrix", "per_class_accuracy",
    "stratified_kfold", "job_seed", "OPTIMIZERS", "init_state",
]
