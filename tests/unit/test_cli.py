"""The `moteplass` command loads a service's commands only when they are asked for."""

import subprocess
import sys

import click

from moteplass.cli import LazyGroup, main


def test_every_lazy_command_resolves_to_a_click_command():
    ctx = click.Context(main)
    for name in LazyGroup.lazy:
        assert isinstance(main.get_command(ctx, name), click.Command), name
    assert set(LazyGroup.lazy) <= set(main.list_commands(ctx))


def test_the_command_line_starts_without_importing_any_service():
    code = "import sys, moteplass.cli; print(sorted(m for m in sys.modules if m.startswith('services')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
