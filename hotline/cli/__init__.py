"""The `hotline` command line: one module per command group, assembled in `hotline.cli.main`."""
