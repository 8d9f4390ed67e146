"""The ``opex`` command line (also ``kubectl opex``)."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """opex: the AWS CI/CD operations runbook as Kubernetes custom resources."""


@cli.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator(verbose: bool) -> None:
    """Run the operator against $KUBECONFIG (or in-cluster).

    \b
    Example:
      OPEX_NAMESPACES=payments opex operator
    """
    from .runner import run

    run(verbose=verbose)


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def crds(directory: Path | None) -> None:
    """Print the CustomResourceDefinitions, or write one file per kind into DIRECTORY.

    \b
    Example:
      opex crds | kubectl apply --server-side -f -
    """
    from .api import KINDS
    from .api.crdgen import render, write_all

    if directory is None:
        click.echo("---\n".join(render(k) for k in KINDS), nl=False)
    else:
        for path in write_all(directory):
            click.echo(path)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="opex")
