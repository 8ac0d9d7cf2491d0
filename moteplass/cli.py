"""The `moteplass` command: run the dev stack or one service, issue a local admin token, generate contracts."""

import asyncio
import importlib
from pathlib import Path

import click

from shared.auth import Role, issue_token
from shared.settings import SettingsError, local_settings

ROOT = Path(__file__).resolve().parent.parent


class LazyGroup(click.Group):
    """Service commands are imported only when named (click's lazy-loading pattern), so that a broken or heavy
    service module does not break `moteplass token` or `moteplass dev`."""

    # command name → "module:attribute" of a click command or group a service offers in its cli.py
    lazy = {"demo": "services.registration.cli:demo",
            "notifications": "services.notifications.cli:notifications"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attribute = self.lazy[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup)
def main() -> None:
    """Møteplass: registration, comments and notifications for public-sector meetups."""


@main.command()
def dev() -> None:
    """Run the whole system locally (what `make run` does)."""
    from . import devstack

    try:
        asyncio.run(devstack.run(ROOT))
    except KeyboardInterrupt:
        click.echo("\nStopped.")
    except devstack.DevStackError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("service", type=click.Choice(["registration", "comments", "notifications"]))
def serve(service: str) -> None:
    """Run one service (each scales on its own)."""
    importlib.import_module(f"services.{service}.app").main()


@main.command()
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.admin.value, show_default=True)
@click.option("--subject", default="local-admin", show_default=True)
@click.option("--hours", default=12, show_default=True)
def token(role: str, subject: str, hours: int) -> None:
    """Print a signed admin/moderator JWT for local use (signed with JWT_SECRET, else the local install's secret)."""
    try:
        click.echo(issue_token(local_settings(), Role(role), subject, hours))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--check", is_flag=True, help="Only check: exit 1 when the checked-in files are stale.")
def schemas(check: bool) -> None:
    """Generate docs/schemas/*.json, docs/asyncapi.yaml and the README's event catalogue from shared.messages."""
    from . import contract

    changed = contract.stale(ROOT) if check else contract.write(ROOT)
    for path in changed:
        click.echo(f"{'stale' if check else 'updated'}: {path}")
    if check and changed:
        raise click.ClickException("generated contract files are stale; run `make schemas` and commit them")
    if not changed:
        click.echo("contract files are up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--smtp-port", default=1025, show_default=True)
@click.option("--http-port", default=8025, show_default=True)
def mailsink(host: str, smtp_port: int, http_port: int) -> None:
    """Run the dev mail sink (SMTP + Mailpit-style HTTP API)."""
    from .mailsink import serve as serve_sink

    click.echo(f"mail sink: smtp://{host}:{smtp_port}  http://{host}:{http_port}/api/v1/messages")
    try:
        asyncio.run(serve_sink(host, smtp_port, http_port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
