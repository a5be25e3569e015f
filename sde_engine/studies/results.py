"""Writing result files atomically: a reader never sees half a file."""
import csv
import io
import json
import math
import os
import tempfile

import numpy as np


def _atomic_write(path, text):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_jsonable(obj):
    """numpy arrays/scalars to lists/floats; NaN/inf to None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    _atomic_write(path, text)


def write_json(path, record):
    """Write ``record`` as JSON to ``path`` atomically (temp file + os.replace)."""
    _atomic_write(path, json.dumps(to_jsonable(record), indent=2, allow_nan=False) + "\n")


def write_csv(path, header, rows):
    """Write rows (sequences matching ``header``) as CSV atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(to_jsonable(list(row)))   # NaN -> None -> empty cell
    _atomic_write(path, buf.getvalue())


def check_output_dir(path, name="--out"):
    """Refuse, before any work, an output folder that cannot be created or written.

    ``path`` may not exist yet; then its nearest existing ancestor must be a
    writable folder. Raises a one-line ``ValueError`` naming ``name`` and the path.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name} {path} exists and is not a folder")
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"{name} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: no permission to write in {probe}")
