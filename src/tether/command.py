"""``tether`` and ``python -m tether``: the command line, importing the application only when a
command needs it.

The commands are Typer's, built by :func:`tether.cli.app.build_cli`; what they need from the
composition root (:mod:`tether.bootstrap`, which imports the whole application: the API, GraphQL,
the jobs, the store) is imported when a command first asks for it. ``tether --help``, a mistyped
option and the commands that talk to a server through the SDK do not pay for it.
"""

from __future__ import annotations

from typing import Any


class _Deferred:
    """The composition root's parts (:class:`tether.cli.app.Parts`), imported on first use."""

    def __getattr__(self, name: str) -> Any:
        from tether.bootstrap import Assembly

        return getattr(Assembly, name)


def main() -> None:
    """``tether`` and ``python -m tether``."""
    from tether.cli.app import build_cli, err_console
    from tether.errors import ConfigurationError, ProblemError

    try:
        build_cli(_Deferred())()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise SystemExit(2) from None
    except ProblemError as exc:
        err_console.print(f"[red]{exc.title}:[/red] {exc.detail}")
        raise SystemExit(1) from None
