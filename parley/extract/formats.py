"""The extensions /v8/files/extract takes, in the order its error message names them (docs/protocol.md)."""

SUPPORTED = ("pdf", "csv", "docx", "doc", "txt", "md", "xlsx", "xls", "pptx", "html", "htm", "json", "yaml", "yml")
