"""Progress off a terminal: plain lines with rounded numbers and the time left."""

from __future__ import annotations

from grammar_ae.utils.progress import PlainProgress, progress_bar


def test_a_bar_prints_plain_lines_when_stderr_is_not_a_terminal(capsys):
    with progress_bar("BO iterations", 3) as advance:
        advance(0, status="encoding")
        advance(1, status="best so far 1.2346")
        advance(1)  # the same status, moments later: no line
        advance(1)  # the last step: a line
    assert capsys.readouterr().err.splitlines() == [
        "BO iterations: 0/3 (0%), 0:00 elapsed, ETA ?, encoding",
        "BO iterations: 1/3 (33%), 0:00 elapsed, ETA 0:00, best so far 1.2346",
        "BO iterations: 3/3 (100%), 0:00 elapsed, ETA 0:00, best so far 1.2346",
    ]


def test_plain_lines_come_every_half_minute_with_an_estimate_of_the_time_left(capsys):
    now = [0.0]
    progress = PlainProgress("parsing 10,000 strings", 10_000, clock=lambda: now[0])
    now[0] = 20.0
    progress.advance(2_000)
    assert capsys.readouterr().err == ""
    now[0] = 40.0
    progress.advance(1_000)
    now[0] = 4000.0
    progress.advance(1)
    assert capsys.readouterr().err.splitlines() == [
        "parsing 10,000 strings: 3,000/10,000 (30%), 0:40 elapsed, ETA 1:33",
        "parsing 10,000 strings: 3,001/10,000 (30%), 1:06:40 elapsed, ETA 2:35:29",
    ]
