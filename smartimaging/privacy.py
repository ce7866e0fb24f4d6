"""How outputs name their inputs: by content (sha256), never by a file name, which often holds the patient's name,
unless the user asks for identifiers (`--keep-identifiers`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

KEEP_IDENTIFIERS_HELP = ("record each input's path as given in result.json (left out by default, where each input "
                         "is recorded by its sha256 only: file and folder names often hold the patient's name or ID)")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file; of a folder (a DICOM series), the sha256 of its `sha256sum` listing: one line
    '<sha256>  <relative path>' per file, in byte order of the paths, as
    `cd FOLDER && find . -type f | cut -c3- | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum` prints it."""
    path = Path(path)
    if not path.is_dir():
        return _file_sha256(path)
    files = sorted(Path(root, name).relative_to(path).as_posix()
                   for root, _, names in os.walk(path) for name in names
                   if Path(root, name).is_file() and not Path(root, name).is_symlink())
    listing = "".join(f"{_file_sha256(path / name)}  {name}\n" for name in files)
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def input_record(path: str | os.PathLike, keep_identifiers: bool = False) -> dict:
    """An input as result.json records it: its sha256 (to match a result to its file), and its path as given only
    with `keep_identifiers`."""
    record = {"sha256": input_sha256(path)}
    return {**record, "path": str(path)} if keep_identifiers else record
