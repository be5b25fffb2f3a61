"""Subcommands of the `alnet-fast` command (see alnet_fast.cli)."""
