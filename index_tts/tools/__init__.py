"""Command-line tools (run with `python -m index_tts.tools.<name>`). Importing does nothing."""
