"""Office files are zip archives: refuse a zip bomb before any parser inflates it."""

from __future__ import annotations

import io
import zipfile

from parley.extract.errors import ParseFailure

MAX_INFLATED = 512 * 1024 * 1024  # all members together, uncompressed
MAX_RATIO = 200  # uncompressed / compressed, for any member over 1 MiB


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def check(data: bytes, kind: str) -> None:
    if data.startswith(OLE_MAGIC):  # a password-protected OOXML file is an OLE "EncryptedPackage"
        raise ParseFailure(kind, "the document is encrypted (password-protected)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ParseFailure(kind, "the file is corrupt or not a valid Office document") from None
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ParseFailure(kind, f"refusing a zip bomb ({info.filename} inflates {info.file_size} bytes)")
    if total > MAX_INFLATED:
        raise ParseFailure(kind, f"refusing a zip bomb ({total} bytes uncompressed)")
