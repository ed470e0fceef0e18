"""The one progress reporter (training epochs, data generation) without a terminal."""

from __future__ import annotations

from coldflow.training.progress import Progress


def test_plain_lines_at_every_mark_and_restored_units_out_of_the_rate():
    said: list[str] = []
    with Progress(True, said.append, unit="frames", line_marks=4) as bar:
        assert not bar.live  # pytest captures the output: no terminal
        bar.start("simulate", 8)
        bar.skip(2)  # a quarter done before this process: a line, no rate
        assert said == ["simulate: 2/8 frames (25%), 0.0 frames/s, ETA ?"]
        for _ in range(6):
            bar.advance(1)
    assert [s.split(",")[0] for s in said] == [
        f"simulate: {k}/8 frames ({100 * k // 8}%)" for k in (2, 4, 6, 8)
    ]
    assert bar.restored == 2 and bar.eta == 0.0


def test_the_caller_computes_what_it_shows_only_when_a_line_is_due():
    said: list[str] = []
    line = lambda p, f: f"{p.description}: step {p.done}/{p.total}, loss {f['loss']}"  # noqa: E731
    bar = Progress(True, said.append, line=line, line_every=3600.0)
    bar.start("epoch 1/1", 3)
    assert not bar.step(1)  # within the hour: nothing due
    bar.line_every = -1.0
    assert bar.step(2)
    bar.show(loss=0.5)
    assert said == ["epoch 1/1: step 2/3, loss 0.5"]
    assert not Progress(False, said.append, line_every=-1.0).step(1)  # disabled: never due
