"""producers component."""
