"""Checkpoint files of finished chunks: ``DIR/checkpoint/<name>.jsonl``, verified on load.

A checkpoint is an append-only log of JSON lines, so saving a chunk costs the
same however many chunks came before (the whole file is never rewritten):

* line 1, the header: ``{"format", "fingerprint", "info", "shape", "sha256"}``
  (``shape``: that of every chunk's mean and m2);
* one line per finished chunk: ``{"offset", "count", "mean", "m2", "sha256"}``,
  the streamed :class:`~.statistics.Moments` of paths [offset, offset + count).

Every line carries the SHA-256 of its canonical JSON (sorted keys, no spaces);
a chunk's checksum also covers the header's fingerprint, so a line copied from
a checkpoint of other settings fails too. Floats round-trip exactly through
JSON, so a resumed study gives bit-identical numbers. If an offset occurs
twice the later line wins (a recomputed chunk supersedes its earlier one).

Loading verifies everything. A file that is malformed, fails a checksum, or
holds a chunk of the wrong shape, offset or count raises :class:`CheckpointError`
(a ``ValueError`` naming the file and saying to delete it or rerun with
``--restart``); it is never used, and never silently discarded. Two cases are not errors:

* a last line without its newline: an append cut short by a crash; it is
  dropped (its chunk is recomputed) and the file is cut back before the next append;
* a header of other settings (another fingerprint): the settings changed, so the
  file is started afresh on the first save, as before.

Checkpoints of the earlier single-JSON format (``<name>.json``, no checksums)
cannot be verified and are refused with the same one-line message.
"""
import hashlib
import json
import os
import shutil
import time

import numpy as np

from .results import write_text
from .statistics import Moments

FORMAT = "sde-engine checkpoint v2"
FSYNC_EVERY_S = 1.0     # appends reach the OS at once; the disk at most this often


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted; the message is one line."""


def _canonical(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _digest(record, salt=""):
    return hashlib.sha256((salt + _canonical(record)).encode()).hexdigest()


def _signed_line(record, salt=""):
    return _canonical({**record, "sha256": _digest(record, salt)}) + "\n"


class PointStore:
    """Per-point checkpoint logs ``DIR/checkpoint/<name>.jsonl`` of finished chunks.

    With ``folder=None`` nothing is stored. :meth:`load` a name before saving
    to it; the first save after a load of other settings starts the file afresh.
    """

    def __init__(self, folder):
        self.folder = folder
        self._logs = {}         # name -> dict(key, size, written: offset -> Moments)
        self._last_sync = time.monotonic()

    @property
    def directory(self):
        return None if self.folder is None else os.path.join(self.folder, "checkpoint")

    def _path(self, name):
        return os.path.join(self.directory, f"{name}.jsonl")

    def _refuse(self, path, problem):
        raise CheckpointError(f"checkpoint {path} {problem}; delete it, or rerun with --restart "
                              f"to discard the checkpoints of {self.folder}")

    # ---- reading ----------------------------------------------------------------------
    def load(self, name, key, bounds=None, shape=None):
        """Verified chunks of ``name`` saved under fingerprint ``key``: {offset: Moments}.

        Parameters
        ----------
        name : str
        key : str
            Fingerprint of the settings; a file of another fingerprint gives {}.
        bounds : list of (offset, size), optional
            The chunks the study expects; each stored chunk must be one of
            them, with 0 ≤ count ≤ size.
        shape : tuple of int, optional
            Shape of each chunk's mean and m2 (default: the header's).

        Raises
        ------
        CheckpointError
            The file cannot be trusted (see the module docstring).
        """
        if self.folder is None:
            return {}
        legacy = os.path.join(self.directory, f"{name}.json")
        if os.path.isfile(legacy):
            self._refuse(legacy, "has the old format without checksums and cannot be verified")
        path = self._path(name)
        if not os.path.exists(path):
            self._logs.pop(name, None)
            return {}
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            self._refuse(path, f"cannot be read ({exc.strerror})")
        lines = data.split(b"\n")
        tail = lines.pop()                   # b"" when the file ends with a newline
        good_size = len(data) - len(tail)    # a cut-short last append is dropped
        if not lines:
            self._refuse(path, "is truncated (no complete header line)")
        header = self._record(path, 1, lines[0], ("format", "fingerprint", "info", "shape"))
        if header["format"] != FORMAT:
            self._refuse(path, f"has format {header['format']!r}, expected {FORMAT!r}")
        if header["fingerprint"] != key:     # other settings: recompute, file restarted
            self._logs.pop(name, None)
            return {}
        sizes = dict(bounds) if bounds is not None else None
        want = tuple(shape) if shape is not None else header["shape"]
        if not isinstance(want, (list, tuple)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in want):
            self._refuse(path, f"line 1: shape {want!r} is not a list of sizes")
        want = tuple(want)
        chunks = {}
        for n, raw in enumerate(lines[1:], start=2):
            rec = self._record(path, n, raw, ("offset", "count", "mean", "m2"), salt=key)
            off, count = rec["offset"], rec["count"]
            if not (isinstance(off, int) and isinstance(count, int)) or isinstance(off, bool) \
                    or isinstance(count, bool):
                self._refuse(path, f"line {n}: offset and count must be integers")
            if sizes is not None and off not in sizes:
                self._refuse(path, f"line {n}: offset {off} is not the start of a chunk of this "
                                   f"study")
            if count < 0 or (sizes is not None and count > sizes[off]):
                limit = "" if sizes is None else f" (chunk of {sizes[off]} paths)"
                self._refuse(path, f"line {n}: count {count} is out of range{limit}")
            try:
                mean = np.asarray(rec["mean"], dtype=float)
                m2 = np.asarray(rec["m2"], dtype=float)
            except (TypeError, ValueError):
                self._refuse(path, f"line {n}: mean and m2 must be arrays of numbers")
            if mean.shape != want or m2.shape != want:
                self._refuse(path, f"line {n}: chunk of shape {mean.shape}/{m2.shape}, "
                                   f"expected {want}")
            chunks[off] = Moments(count, mean, m2)
        self._logs[name] = dict(key=key, size=good_size, written=dict(chunks))
        return chunks

    def _record(self, path, n, raw, fields, salt=""):
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._refuse(path, f"line {n} is not valid JSON (malformed or truncated)")
        if not isinstance(rec, dict) or set(rec) != {*fields, "sha256"}:
            got = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            self._refuse(path, f"line {n} has fields {got}, expected "
                               f"{sorted({*fields, 'sha256'})}")
        sha = rec.pop("sha256")
        if sha != _digest(rec, salt):
            self._refuse(path, f"line {n} fails its checksum (the file was edited or damaged)")
        return rec

    # ---- writing ----------------------------------------------------------------------
    def append(self, name, key, offset, moments, info):
        """Add one finished chunk to the log of ``name`` (creating it if needed)."""
        if self.folder is None:
            return
        log = self._logs.get(name)
        if log is None or log["key"] != key:
            header = dict(format=FORMAT, fingerprint=key, info=_plain(info),
                          shape=list(np.shape(moments.mean)))
            text = _signed_line(header)
            write_text(self._path(name), text)             # atomic: never half a header
            log = self._logs[name] = dict(key=key, size=len(text.encode()), written={})
        line = _signed_line(dict(offset=int(offset), count=int(moments.count),
                                 mean=np.asarray(moments.mean, dtype=float).tolist(),
                                 m2=np.asarray(moments.m2, dtype=float).tolist()),
                            salt=key).encode()
        fd = os.open(self._path(name), os.O_WRONLY)
        try:
            if os.fstat(fd).st_size != log["size"]:
                os.ftruncate(fd, log["size"])               # drop a cut-short last append
            os.lseek(fd, log["size"], os.SEEK_SET)
            os.write(fd, line)
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_EVERY_S:
                os.fsync(fd)
                self._last_sync = now
        finally:
            os.close(fd)
        log["size"] += len(line)
        log["written"][offset] = moments

    def save(self, name, key, chunks, info):
        """Append every chunk of ``chunks`` ({offset: Moments}) not yet in the log."""
        if self.folder is None:
            return
        log = self._logs.get(name)
        written = log["written"] if log is not None and log["key"] == key else {}
        for off, m in chunks.items():
            if written.get(off) is not m:
                self.append(name, key, off, m, info)
                written = self._logs[name]["written"]

    def clear(self):
        """Delete every checkpoint of this folder (``--restart``)."""
        if self.folder is not None and os.path.isdir(self.directory):
            shutil.rmtree(self.directory)
        self._logs.clear()


def _plain(info):
    """``info`` as plain JSON values (numpy scalars and tuples become floats and lists)."""
    return json.loads(json.dumps(info, default=lambda x: x.tolist() if hasattr(x, "tolist")
                                 else str(x)))
