"""The chat core: one turn against a provider, in OpenAI's canonical shapes."""
