"""system/signals.py: what a signal does inside a block that must not be cut short."""

import os
import signal
import time

import pytest

from mlcv_cli.system import signals


def test_a_signal_during_a_deferred_block_takes_effect_after_it():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished.append(True)
    assert finished == [True]
