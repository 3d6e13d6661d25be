"""The crash-test failpoints: a spec is parsed exactly, and a malformed one is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cybermesh.failpoints import FailpointSpecError, parse

pytestmark = pytest.mark.unit


def test_a_spec_names_points_actions_and_the_hit_to_pause_at() -> None:
    assert parse("") == {}
    assert parse("a.b=pause@3, c=pause") == {"a.b": ("pause", 3), "c": ("pause", 1)}


@pytest.mark.parametrize("spec", ["a", "=pause", "a=crash", "a=pause@x", "a=pause@0"])
def test_a_malformed_spec_is_refused(spec: str) -> None:
    with pytest.raises(FailpointSpecError, match="CYBERMESH_FAILPOINTS"):
        parse(spec)


def test_an_armed_point_parks_the_process_at_its_nth_hit() -> None:
    code = ("from cybermesh import failpoints\n"
            "for i in range(5):\n"
            "    print(i, flush=True)\n"
            "    failpoints.hit('p')\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={"CYBERMESH_FAILPOINTS": "p=pause@2", "PATH": "/usr/bin"})
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=3)
    finally:
        process.kill()
    stdout, stderr = process.communicate()
    assert stdout.split() == ["0", "1"]
    assert "failpoint p paused" in stderr
