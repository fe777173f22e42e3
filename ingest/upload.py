"""Files handed over through the chat window: checked, copied into the collection's
uploads folder (the index refers to files by path, so they must outlive the browser's
temporary copies), zips unpacked safely. Ingesting them is the pipeline's job.

    refused, report = add_uploads(ingestor, home, "default", files, max_bytes, max_files)
    shown_name(record.path, uploads_dir(home, "default"))     # "eng/notes.md": the name it was given

A zip becomes a folder named after it; uploading it again replaces that folder, so files
left out of the new zip leave the index (the pipeline's rule for deleted files).
"""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from ingest import loaders
from ingest.store import collection_dir

UPLOADS = "uploads"


@dataclass
class Refused:
    name: str           # the file name the user gave
    reason: str


def uploads_dir(home: Path, collection: str) -> Path:
    return collection_dir(home, collection) / UPLOADS


def accepted_suffixes() -> list[str]:
    """Extensions the window offers in its file picker: what the loaders read, and zips."""
    return sorted(loaders.FORMATS) + [".zip"]


def stage_uploads(files: Sequence[str | os.PathLike], dest: Path, max_bytes: int,
                  max_files: int = 2000) -> tuple[list[Path], list[Refused]]:
    """Copy each accepted file (or unpacked zip) into `dest`; return what to ingest and
    what was refused, with the reason, in the order given."""
    dest.mkdir(parents=True, exist_ok=True)
    staged: list[Path] = []
    refused: list[Refused] = []
    for given in files:
        path = Path(given)
        name = _safe_name(path.name)
        try:
            size = path.stat().st_size
        except OSError:
            refused.append(Refused(path.name, "the upload did not arrive (file missing)"))
            continue
        if size == 0:
            refused.append(Refused(path.name, "empty file"))
        elif name.lower().endswith(".zip"):
            try:
                folder, skipped = _unpack(path, dest / name[:-4], max_bytes, max_files)
                staged.append(folder)
                refused += skipped
            except UploadError as exc:
                refused.append(Refused(path.name, str(exc)))
            except OSError as exc:
                refused.append(Refused(path.name, f"cannot be unpacked here ({exc.strerror or exc})"))
        elif loaders.format_for(Path(name)) is None:
            suffix = Path(name).suffix or "no extension"
            refused.append(Refused(path.name, f"unsupported format ({suffix}); docent reads "
                                              f"{', '.join(accepted_suffixes())}"))
        elif size > max_bytes:
            refused.append(Refused(path.name, f"too large ({size / 2**20:.1f} MiB; the limit is "
                                              f"{max_bytes / 2**20:.0f} MiB, setting ui.max_upload_mb)"))
        else:
            target = dest / name
            try:
                _copy_atomic(path, target)
            except OSError as exc:         # a name too long for the disk, a folder of that name...
                refused.append(Refused(path.name, f"cannot be stored ({exc.strerror or exc})"))
                continue
            staged.append(target)
    return staged, refused


def add_uploads(ingestor, home: Path, collection: str, files: Sequence[str | os.PathLike], max_bytes: int,
                max_files: int, folder: str = "", progress=None):
    """Stage `files` in the collection's uploads folder (under `folder`, checked by
    upload_folder) and ingest them: (refused, the ingest report or None when nothing was
    staged). The window and the team server both add files this way."""
    root = uploads_dir(home, collection)
    staged, refused = stage_uploads(files, root / folder if folder else root, max_bytes, max_files)
    # Not remembered as sources: an upload is added once; `docent sync` re-reads what was
    # ingested from folders, branches and sites, and a removed upload must not come back.
    return refused, (ingestor.ingest(staged, collection, progress=progress, remember=False) if staged else None)


def shown_name(path: str, uploads: Path) -> str:
    """An uploaded file by the name it was given (its path under `uploads`); another
    file by its path."""
    try:
        return Path(path).relative_to(uploads).as_posix()
    except ValueError:
        return path


class UploadError(Exception):
    pass


def upload_folder(folder: str) -> str:
    """A sub-folder of the uploads folder as given by a client ("eng/notes"), checked:
    relative, no "..", no dot names. Raises UploadError with the reason."""
    parts = [p for p in folder.replace("\\", "/").split("/") if p not in ("", ".")]
    for part in parts:
        if part == ".." or part.startswith(".") or part != part.strip() or len(part) > 128:
            raise UploadError(f"the folder '{folder}' is not allowed: plain names separated by '/', no '..' "
                              f"and none starting with '.'")
    return "/".join(parts)


def _safe_name(name: str) -> str:
    """A file name that cannot climb out of the uploads folder or hide as a dot file."""
    name = PurePosixPath(name.replace("\\", "/")).name.lstrip(".").strip()
    return name or "upload"


def _copy_atomic(source: Path, target: Path) -> None:
    from docent.atomic import replacing
    with replacing(target) as scratch:
        shutil.copyfile(source, scratch)


def _unpack(archive: Path, target: Path, max_bytes: int, max_files: int) -> tuple[Path, list[Refused]]:
    """Unpack into a fresh folder, then swap it in for the one a previous upload made.
    A member the disk will not take (its name too long, a file where the zip also has a
    folder of that name) is refused with its reason; the others go in."""
    skipped: list[Refused] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise UploadError("the zip holds no files")
            if len(members) > max_files:
                raise UploadError(f"the zip holds {len(members):,} files; the limit is {max_files:,} "
                                  f"(setting ui.max_upload_files)")
            total = sum(m.file_size for m in members)
            if total > max_bytes:
                raise UploadError(f"the zip unpacks to {total / 2**20:.1f} MiB; the limit is "
                                  f"{max_bytes / 2**20:.0f} MiB (setting ui.max_upload_mb)")
            fresh = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
            try:
                for member in members:
                    parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                    if member.filename.startswith(("/", "\\")) or ".." in parts or not parts:
                        raise UploadError(f"the zip holds an unsafe path ({member.filename!r})")
                    if member.flag_bits & 0x1:
                        raise UploadError("the zip is encrypted")
                    out = fresh.joinpath(*parts)
                    try:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(member) as src, open(out, "wb") as dst:
                            # Read at most what the header promised: a lying header cannot fill the disk.
                            dst.write(src.read(member.file_size + 1)[:member.file_size])
                    except OSError as exc:
                        skipped.append(Refused(f"{archive.name}: {member.filename}",
                                               f"cannot be unpacked here ({exc.strerror or exc})"))
                old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
                if target.exists():
                    os.replace(target, old)
                os.replace(fresh, target)
                shutil.rmtree(old, ignore_errors=True)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
    except zipfile.BadZipFile:
        raise UploadError("not a valid zip file (corrupt or truncated)") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise UploadError(f"cannot unpack the zip: {exc}") from None
    return target, skipped
