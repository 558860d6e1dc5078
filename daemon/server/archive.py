"""Kept enrollment photos (opt-in, ``--keep-photos DIR``), for re-enrolling everyone
when the model changes (``facegate reembed``) without asking anyone for new photos.

    DIR/<person_id>/person.json       {"person_id", "name", "photos": [{"file", "sha256"}]}
    DIR/<person_id>/<sha256[:16]>.jpg the accepted photos, exactly as given

Photos of faces are personal data: folders are created 0700 and files 0600, a person's
folder is replaced as a whole on re-enrollment (it always matches the published record)
and deleted on ``facegate remove``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from daemon.protocol.person import valid_person_id

META = "person.json"
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WebP": ".webp", "TIFF": ".tif", "PNM": ".pnm"}


@dataclass(frozen=True)
class KeptPerson:
    person_id: str
    name: str
    photos: tuple[Path, ...]


class PhotoArchive:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _folder(self, person_id: str) -> Path:
        if not valid_person_id(person_id):  # it becomes a path: no '..', no '/'
            raise ValueError(f"invalid person id {person_id!r}")
        return self.root / person_id

    def save(self, person_id: str, name: str, photos: list[tuple[bytes, str, str]]) -> Path:
        """Replace the person's kept photos with ``photos`` ((data, sha256, kind) each).
        Written to a temporary folder first, so a crash leaves the old or the new set."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._folder(person_id)
        staging = self.root / f".staging-{person_id}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(mode=0o700)
        entries = []
        for data, sha256, kind in photos:
            file = f"{sha256[:16]}{EXTENSIONS.get(kind, '.img')}"
            _write_private(staging / file, data)
            entries.append({"file": file, "sha256": sha256})
        meta = {"person_id": person_id, "name": name, "photos": entries}
        _write_private(staging / META, (json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode())
        old = self.root / f".old-{person_id}-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def delete(self, person_id: str) -> bool:
        folder = self._folder(person_id)
        if not folder.exists():
            return False
        shutil.rmtree(folder)
        return True

    def people(self) -> list[KeptPerson]:
        """Everyone kept, sorted by id. Folders without a readable person.json are skipped."""
        kept = []
        if not self.root.is_dir():
            raise ValueError(f"photo folder not found: {self.root}")
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                meta = json.loads((folder / META).read_text())
                photos = tuple(folder / e["file"] for e in meta["photos"])
                name, person_id = str(meta["name"]), str(meta["person_id"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if person_id == folder.name and valid_person_id(person_id):
                kept.append(KeptPerson(person_id, name, photos))
        return kept


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
