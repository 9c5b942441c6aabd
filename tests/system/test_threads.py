"""BLAS threads per operation: minibatch training on one thread, everything else left as it is."""

from threadpoolctl import threadpool_info

from mlcv_cli import config
from mlcv_cli.workflow.train import train


def blas_threads():
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


class RecordingProgress:
    """Records the BLAS thread count at every progress update (training steps call it)."""

    def __init__(self):
        self.seen = {}

    def __call__(self, total, desc):
        seen = self.seen.setdefault(desc, set())

        class Bar:
            def update(self, n=1, **postfix):
                seen.add(blas_threads())

            def close(self):
                pass

        return Bar()


def test_minibatch_training_runs_on_one_blas_thread(in_tmp):
    before = blas_threads()
    cfg = config.replace(config.resolve(model_type="softmax"), {"data.num_train": 400, "data.num_test": 50, "train.epochs": 2})
    progress = RecordingProgress()
    train(cfg, progress=progress)
    assert progress.seen["train softmax"] == {1}
    assert progress.seen["evaluate test"] == {before}  # scoring (and kNN's products) keep every core
    assert blas_threads() == before  # restored afterwards
