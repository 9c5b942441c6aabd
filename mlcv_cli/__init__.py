"""mlcv: k-nearest neighbours and linear classifiers for image classification, from the command line."""

__version__ = "0.1.0"
