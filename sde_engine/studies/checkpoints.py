"""Checkpoint files of finished chunks (``DIR/checkpoint/<name>.json``)."""
import json
import os

from .results import write_json
from .statistics import Moments


class PointStore:
    """Per-point checkpoint files ``DIR/checkpoint/<name>.json`` of finished chunks.

    Each file holds the fingerprint of the settings, and the streamed moments
    of every finished chunk keyed by its path offset. Floats round-trip
    exactly through JSON, so a resumed study gives bit-identical numbers.
    With ``folder=None`` nothing is stored.
    """

    def __init__(self, folder):
        self.folder = folder

    def _path(self, name):
        return os.path.join(self.folder, "checkpoint", f"{name}.json")

    def load(self, name, key):
        if self.folder is None or not os.path.isfile(self._path(name)):
            return {}
        with open(self._path(name)) as fh:
            data = json.load(fh)
        if data.get("fingerprint") != key:
            return {}
        return {int(off): Moments.from_dict(m) for off, m in data["chunks"].items()}

    def save(self, name, key, chunks, info):
        if self.folder is None:
            return
        write_json(self._path(name), dict(
            fingerprint=key, info=info,
            chunks={str(off): m.as_dict() for off, m in sorted(chunks.items())}))
