"""The record of what yamlforge did to a checkout (``.yamlforge/manifest.json`` plus original copies)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath

from ..errors import YamlforgeError
from ..textfile import read_text

STATE_DIR = ".yamlforge"
MANIFEST = f"{STATE_DIR}/manifest.json"
ORIGINALS = f"{STATE_DIR}/originals"  # pristine copies of patched files
APPLIED = f"{STATE_DIR}/applied"  # what yamlforge left in them, to replay edits onto user changes
FORMAT = 1


def sha256(data: bytes | None) -> str | None:
    import hashlib  # not at the top: it loads OpenSSL (ms), and gen-yaml reads the manifest without hashing

    return None if data is None else hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """What a :class:`FileRecord` holds for the file at ``path``: the hash of its text, whatever its line endings."""
    return sha256(read_text(path).encode("utf-8"))


def recorded_path(path: PurePath, root: PurePath) -> str:
    """How the manifest records a file of the user's (a ``--spec``): relative to the checkout when it is inside,
    with ``/`` as separator either way, so a manifest reads the same on every OS."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def recorded_file(recorded: str, root: Path) -> Path:
    """The file a :func:`recorded_path` names (an absolute one as it is)."""
    return Path(root) / recorded


@dataclass
class AppliedModule:
    """One applied spec: what it exports and which files hold it."""

    spec_digest: str
    exports: list[str]
    role: str
    channels: str
    file: str
    spec_path: str | None = None  # set for user specs (``--spec``), so revert/re-apply can find them again
    requires: list[str] = field(default_factory=list)


@dataclass
class AppliedFusion:
    """One generated fusion variant (``RepC3_SHSA``): host, inserted module class, its spec, placement, file."""

    host: str
    module: str
    spec: str
    at: str
    file: str


@dataclass
class FileRecord:
    """A file yamlforge created (``before`` is None) or patched, with content hashes."""

    before: str | None
    after: str


@dataclass
class Manifest:
    target: str
    modules: dict[str, AppliedModule] = field(default_factory=dict)
    fixes: list[str] = field(default_factory=list)
    files: dict[str, FileRecord] = field(default_factory=dict)
    format: int = FORMAT
    fusions: dict[str, AppliedFusion] = field(default_factory=dict)  # by class name; absent from older manifests

    @property
    def applied_names(self) -> set[str]:
        """Every name a model YAML may use because of this manifest (module names and their exports)."""
        return {n for name, m in self.modules.items() for n in (name, *m.exports)} | set(self.fusions)

    def to_text(self) -> str:
        data = asdict(self)
        if not self.fusions:  # manifests without fusions stay as they were before fusions existed
            del data["fusions"]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str, where: str) -> Manifest:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            return cls(
                target=raw["target"],
                modules={k: AppliedModule(**v) for k, v in raw["modules"].items()},
                fixes=list(raw.get("fixes", [])),
                files={k: FileRecord(**v) for k, v in raw["files"].items()},
                fusions={k: AppliedFusion(**v) for k, v in raw.get("fusions", {}).items()},
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise YamlforgeError(f"unreadable yamlforge manifest: {exc}", where=where,
                                 hint=f"restore it from version control, or delete {STATE_DIR}/ to forget it") from None


def read_manifest(root: Path) -> Manifest | None:
    """The checkout's manifest, or None when yamlforge never applied anything there."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    return Manifest.from_text(path.read_text(encoding="utf-8"), str(path))
