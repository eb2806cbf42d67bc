"""Authentication: gateway keys, project keys and v8 ek-/ak- tokens."""
