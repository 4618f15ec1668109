"""models component."""
