"""The HTTP dialects: thin routers over the core, each with its own error bodies."""
