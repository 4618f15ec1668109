"""The ``dnsentinel`` command line: composes each component's commands."""
