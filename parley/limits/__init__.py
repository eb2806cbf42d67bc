"""Rate limits and spend budgets per gateway key, project, integration and end user."""
