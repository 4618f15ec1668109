"""stream_processor component."""
