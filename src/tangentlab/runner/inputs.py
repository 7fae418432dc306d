"""Content hashes of the files a run reads, so that a run's identity changes when they do.

A run's identity (:attr:`tangentlab.runner.RunConfig.run_id`) covers its resolved config, and through
``RunConfig.inputs`` the sha256 of every input file it reads: the ``npz:PATH`` dataset file, the CIFAR archive
(``cifar10:PATH``: the ``.tar.gz``, or the batch files of its extracted folder), and for a user's own study (``study: package.module:Class``) the source file of the module
that defines the class. Edit the data or the study's code and the runs get new ids: a rerun into the same folder
computes them again instead of answering "already finished" with stale numbers.

Hashes are streamed (1 MiB blocks) and cached by (resolved path, size, mtime_ns, ctime_ns, inode) in
``$TANGENTLAB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/tangentlab`` or ``~/.cache/tangentlab``), so a large file is
read once, not on every ``tangentlab run``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import uuid
from pathlib import Path
from typing import Any

from tangentlab.data import input_files

_CACHE_FILE = "file-hashes.json"
_BLOCK = 1 << 20
_memo: dict[tuple[str, int, int, int, int], str] = {}


def cache_dir() -> Path:
    """Where the hash cache lives."""
    explicit = os.environ.get("TANGENTLAB_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tangentlab"


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file's contents, streamed and cached by path, size, mtime, ctime and inode.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    st = file.stat()
    key = (str(file), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key in _memo:
        return _memo[key]
    cache = _read_cache()
    entry = cache.get(key[0])
    if isinstance(entry, dict) and [entry.get(k) for k in ("size", "mtime_ns", "ctime_ns", "ino")] == list(
        key[1:]
    ):
        _memo[key] = str(entry["sha256"])
        return _memo[key]
    digest = hashlib.sha256()
    with file.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    _memo[key] = value
    cache[key[0]] = {"size": key[1], "mtime_ns": key[2], "ctime_ns": key[3], "ino": key[4], "sha256": value}
    _write_cache(cache)
    return value


def input_hashes(data_name: str, study_name: str, study: Any) -> dict[str, str]:
    """The ``inputs`` of a run: ``{"data": sha256}`` for an ``npz:PATH`` or CIFAR ``.tar.gz`` (or any ``kind:FILE``)
    dataset — for an extracted CIFAR folder the sha256 of its batch files' names and hashes — and
    ``{"study": sha256}`` of the source file of a ``module:Class`` study (built-in studies are covered by the
    tangentlab version).

    Raises:
        FileNotFoundError: the npz file does not exist.
        ValueError: a CIFAR path that holds no CIFAR archive.
    """
    inputs: dict[str, str] = {}
    path = data_name.partition(":")[2]
    files = input_files(data_name)
    if len(files) == 1:  # npz:PATH, a CIFAR .tar.gz
        inputs["data"] = file_sha256(files[0])
    elif files:  # an extracted CIFAR folder: its batch files, by name
        lines = "".join(f"{f.name}:{file_sha256(f)}\n" for f in sorted(files, key=lambda f: f.name))
        inputs["data"] = hashlib.sha256(lines.encode()).hexdigest()
    elif path and Path(path).is_file():  # any other file-backed "kind:FILE"
        inputs["data"] = file_sha256(path)
    if ":" in study_name:
        try:
            source = inspect.getsourcefile(type(study))
        except TypeError:  # a class defined in a C extension or interactively: no file to hash
            source = None
        if source is not None and Path(source).is_file():
            inputs["study"] = file_sha256(source)
    return inputs


def _read_cache() -> dict[str, Any]:
    try:
        loaded = json.loads((cache_dir() / _CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_cache(cache: dict[str, Any]) -> None:
    """Write the cache atomically; a cache that cannot be written only costs a re-hash next time."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_CACHE_FILE}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, folder / _CACHE_FILE)
    except OSError:
        pass
