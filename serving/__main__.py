"""``python -m serving``: run the service with uvicorn (one worker; ``make serve``)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

cli = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (slower).")] = False,
) -> None:
    """Serve churn predictions from the registry's champion (settings from CHURN_* / .env)."""
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=1,
        log_level=log_level,
        access_log=access_log,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    cli()
