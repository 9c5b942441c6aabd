"""mlcv's models as scikit-learn estimators (the optional extra ``mlcv[sklearn]``).

The only package of mlcv that imports scikit-learn (the CLI never imports it; a user's script
does). Classifiers (classifiers.py: KNNClassifier and one class per stepwise model type of the
registry), feature extractors (features.py), mlcv's seeded folds (selection.py: MlcvCV) and a
trained run as a fitted Pipeline (runs.py: load). Shapes: N examples, D features, C classes.
"""

try:
    import sklearn  # noqa: F401
except ImportError as exc:
    raise ImportError(f"mlcv_cli.sklearn needs scikit-learn >= 1.6 ({exc}); install it with: pip install 'mlcv[sklearn]'") from exc

from .classifiers import WRAPPERS, GradientClassifier, KNNClassifier
from .features import ColorHistogramFeatures, Features, HOGFeatures, KMeansFeatures, Pixels
from .runs import load
from .selection import MlcvCV

globals().update(WRAPPERS)  # LinearSVMClassifier, SoftmaxClassifier, MLPClassifier, ...

__all__ = ["KNNClassifier", *sorted(WRAPPERS), "GradientClassifier", "Pixels", "HOGFeatures", "ColorHistogramFeatures",
           "KMeansFeatures", "Features", "MlcvCV", "load"]
