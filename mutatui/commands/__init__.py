"""Subcommands of the `mutatui` CLI, one module each, registered in `mutatui.cli.COMMANDS`."""
