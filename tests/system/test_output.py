"""system/output.py: user text made printable for a terminal and exact for a pipe, and streams
that keep what they could not write."""

import io
import os

import pytest

from helpers import TERMINAL_CONTROL
from mlcv_cli.system import output


def test_printable_escapes_what_a_terminal_would_act_on():
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x202E, 0x2067, 0x2028]:
        assert not TERMINAL_CONTROL.search(output.printable(f"a{chr(code)}b"))
    assert output.printable("\x1b[31mred\r\n\t") == "\\x1b[31mred\\r\\n\\t"
    assert output.printable(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"  # a Latin-1 file name's byte
    for fine in ("[bold]x", "café", "猫 ship", "a\\b", "🐱"):
        assert output.printable(fine) == fine


def test_csv_is_exact_for_a_pipe_and_printable_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    pipe = io.StringIO()
    output.csv_writer(pipe).writerow(["a\x1b[2Jb", 0.5])
    assert pipe.getvalue() == "a\x1b[2Jb,0.5\n"
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    output.csv_writer().writerow(["a\x1b[2Jb", 0.5])
    assert terminal.getvalue() == "a\\x1b[2Jb,0.5\n"


def test_guarded_stream_keeps_what_it_could_not_write():
    r, w = os.pipe()
    os.close(r)
    stream = output.GuardedStream(w, "stdout")
    try:
        assert stream.write("one\n") == 4 and stream.write("two\n") == 4  # no exception, ever
        assert stream.dead.startswith("broken pipe") and "".join(stream.lost) == "one\ntwo\n"
        with pytest.raises(TypeError):
            stream.write(b"bytes")  # click probes streams this way to tell text from binary
    finally:
        os.close(w)


def test_guarded_stream_writes_file_name_bytes_exactly_and_never_fails_to_encode():
    r, w = os.pipe()
    try:
        output.GuardedStream(w, "stdout").write(os.fsdecode(b"caf\xe9.png") + "\n")
        output.GuardedStream(w, "stdout", encoding="ascii").write("猫\n")
        assert os.read(r, 100) == b"caf\xe9.png\n\\u732b\n"
    finally:
        os.close(r)
        os.close(w)
