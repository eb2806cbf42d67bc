"""Wire formats: pure translation between OpenAI's chat shapes and each vendor's.

No I/O here: what needs the network (fetching an image a URL points to) happens before, in
the provider. The ingress side (serving a vendor's format) reuses the same tables.
"""
