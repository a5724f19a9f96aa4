"""CLI sub-commands: thin argument parsing over the library modules."""
