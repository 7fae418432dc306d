"""``tangentlab configs`` (list / copy the packaged sweep files) and ``tangentlab studies --params NAME``."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Annotated

import typer

from tangentlab import studies
from tangentlab._packaged import copy_config, packaged_config_text, packaged_configs, params_table, plain

configs_app = typer.Typer(
    name="configs",
    help="The sweep files shipped with tangentlab: list them, show one, copy one out for editing.",
    no_args_is_help=False,
    invoke_without_command=True,
    rich_markup_mode=None,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"tangentlab: {message}", err=True)
    return typer.Exit(2)


@configs_app.callback()
def configs_list(ctx: typer.Context) -> None:
    """List the packaged sweep files; run one with `tangentlab run NAME` (e.g. quick/lazy)."""
    if ctx.invoked_subcommand is not None:
        return
    for name in packaged_configs():
        typer.echo(name)


@configs_app.command("show")
def configs_show(name: Annotated[str, typer.Argument(help="A packaged config, e.g. quick/lazy.")]) -> None:
    """Print a packaged sweep file."""
    try:
        typer.echo(packaged_config_text(name), nl=False)
    except ValueError as err:
        raise _fail(str(err)) from None


@configs_app.command("copy", short_help="Write a packaged sweep file out for editing.")
def configs_copy(
    name: Annotated[str, typer.Argument(help="A packaged config, e.g. quick/lazy.")],
    directory: Annotated[Path, typer.Argument(help="Folder to write NAME's file into.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a packaged sweep file into DIRECTORY for editing, and print its path."""
    try:
        typer.echo(str(copy_config(name, directory, overwrite=force)))
    except (ValueError, FileExistsError) as err:
        raise _fail(str(err)) from None


def print_params(name: str) -> None:
    """Print study ``name``'s parameters: name, type, default and meaning (from its pydantic model)."""
    try:
        study = studies.get_study(name)
    except ValueError as err:
        raise _fail(str(err)) from None
    columns = min(shutil.get_terminal_size((80, 24)).columns, 100)
    typer.echo(f"{study.name}: parameters (config field `params`, or grid axes without a dot)")
    for field, type_name, default, meaning in params_table(study.Params):
        line = f"  {field}: {type_name} = {default}"
        if len(line) > 100:  # a long default (a dict of settings): its start, the rest in `configs copy`
            line = line[:96] + " …"
        typer.echo(line)
        if meaning:
            typer.echo(
                textwrap.fill(plain(meaning), columns, initial_indent=" " * 6, subsequent_indent=" " * 6)
            )
