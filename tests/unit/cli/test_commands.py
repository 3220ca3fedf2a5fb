"""The one ``churn`` command line: every command is listed and explains itself."""

from __future__ import annotations

import re

import pytest

COMMANDS = [
    ["init-dataset"],
    ["ingest"],
    ["events"],
    ["validate"],
    ["split"],
    ["train"],
    ["warm"],
    ["evaluate"],
    ["model-info"],
    ["history"],
    ["rollback"],
    ["tag-data"],
    ["pull-data"],
    ["check-challenger"],
    ["promote"],
    ["record-image"],
    ["job-summary"],
    ["serve"],
    ["batch-predict"],
    ["monitor"],
    ["deployments"],
    ["forget"],
    ["retention"],
    ["simulate"],
    ["demo"],
    ["screenshots"],
    ["bench", "serve"],
    ["bench", "train"],
    ["bench", "monitor"],
    ["bench", "scale"],
    ["bench", "real-data"],
]


def test_the_top_level_help_lists_every_command(cli, plain):
    result = cli("--help")
    assert result.exit_code == 0
    listed = set(re.findall(r"│ ([a-z-]+) ", plain(result.output)))
    assert {c[0] for c in COMMANDS} <= listed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_explains_itself(cli, plain, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: churn " + " ".join(command) in plain(result.output)
