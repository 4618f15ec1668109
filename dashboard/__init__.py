"""dashboard component."""
