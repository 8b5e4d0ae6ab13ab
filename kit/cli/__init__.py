"""The ``oskit`` command: a thin layer over the library.

Each command parses its arguments, calls one library function, renders the result and lets
:class:`kit.errors.KitError` reach :func:`main`, the one place that turns it into an exit code.
Command groups live beside this module (``kit/cli/provision.py``, ``node.py``, ``models.py``, ``job.py``;
shared options in ``common.py``) and are imported lazily so ``oskit --help`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from kit.cli.common import fail, reset_json
from kit.errors import KitError

# name -> "module:attribute"; modules are imported only when the command runs or help is shown.
COMMANDS: dict[str, str] = {
    # provisioning core
    "validate": "kit.cli.provision:validate",
    "plan": "kit.cli.provision:plan",
    "apply": "kit.cli.provision:apply",
    "diff": "kit.cli.provision:diff",
    "status": "kit.cli.provision:status",
    "destroy": "kit.cli.provision:destroy",
    # living with the cluster
    "migrate": "kit.cli.lifecycle:migrate",
    "test": "kit.cli.lifecycle:test",
    "dashboards": "kit.cli.lifecycle:dashboards",
    # embedded node
    "node": "kit.cli.node:node",
    # models and the model server
    "models": "kit.cli.models:models",
    "serve": "kit.cli.models:serve",
    # the main job
    "ingest": "kit.cli.job:ingest",
    "search": "kit.cli.job:search",
    "similar": "kit.cli.job:similar",
    "eval": "kit.cli.job:eval_cmd",
    "ui": "kit.cli.job:ui",
    "demo": "kit.cli.job:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a part of the product that is not built yet
            if exc.name == module_name:
                return _missing(cmd_name, module_name)
            raise
        cmd = getattr(module, attr, None)
        return cmd if cmd is not None else _missing(cmd_name, module_name)


def _missing(name: str, module: str) -> click.Command:
    @click.command(name=name, help=f"(not available in this build: {module} is missing)")
    def _cmd() -> None:
        raise click.UsageError(f"'oskit {name}' is not available in this build ({module} is missing)")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oskit", prog_name="oskit")
def cli() -> None:
    """oskit: provision OpenSearch for image and text search from YAML kept in git.

    \b
    Example:
      oskit validate && oskit plan && oskit apply --yes && oskit diff --exit-code
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: the one translation of KitError into an exit code."""
    reset_json()
    try:
        return cli.main(args=argv, prog_name="oskit", standalone_mode=True)
    except KitError as err:  # raised through Click's standalone mode
        fail(err)


# Click's standalone mode catches only its own exceptions, so KitError propagates to main().


if __name__ == "__main__":
    main()
