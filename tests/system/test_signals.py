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


def test_handling_installs_for_the_block_and_puts_back_what_it_found():
    import threading

    seen = []
    before = signal.getsignal(signal.SIGTERM)
    with signals.handling((signal.SIGTERM,), lambda s, f: seen.append(s)):
        signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is before
    ran = []

    def elsewhere():  # no handlers outside the main thread: the block still runs
        with signals.handling((signal.SIGTERM,), signal.SIG_IGN):
            ran.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert ran == [before]
