"""Usage records: one row per request, priced from the configuration, written off the request path."""
