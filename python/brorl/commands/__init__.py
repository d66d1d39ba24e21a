"""Command-line subcommands that group several actions (`brorl verify math`, ...)."""
