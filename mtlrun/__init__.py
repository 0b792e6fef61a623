"""mtlrun: a command-line runner for multi-task learning experiments."""

__version__ = "0.1.0"
