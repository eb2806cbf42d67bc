"""The extensions seed 003 lists, in the order its error message names them."""

SUPPORTED = ("pdf", "csv", "docx", "doc", "txt", "md", "xlsx", "xls", "pptx", "html", "htm", "json", "yaml", "yml")
