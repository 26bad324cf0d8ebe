"""Every bad input stops the exporter as tests/golden/bad_inputs.md says: exit code and message.

The table is made by really running `python3 -m exporter ...` (tests/bad_inputs.py); after
a deliberate change of a message, regenerate it with `python3 -m tests.bad_inputs --write`.
"""

from __future__ import annotations

from tests.bad_inputs import CASES, GOLDEN, HEADER, results, row


def test_every_bad_input_gives_the_exit_code_and_message_of_the_table() -> None:
    expected = GOLDEN.read_text().removeprefix(HEADER).splitlines()
    assert len(expected) == len(CASES), "regenerate: python3 -m tests.bad_inputs --write"
    got = [row(case, *result) for case, result in zip(CASES, results(), strict=True)]
    differ = [f"now:   {g}\ntable: {e}" for g, e in zip(got, expected, strict=True) if g != e]
    assert not differ, "\n\n".join(differ)


def test_bad_configuration_is_one_line_per_problem_and_exits_2() -> None:
    for line in GOLDEN.read_text().removeprefix(HEADER).splitlines():
        code = line.split(" | ")[1]
        if code == "2":  # every line it prints names where the problem is
            said = line.split(" | ")[2].split("<br>")
            assert all(s.startswith("`slurm-exporter: ") for s in said), line
