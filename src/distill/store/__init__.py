"""The offline teacher-signal store: `distill capture` writes it, `StoreTeacher` reads it during training.

See docs/store.md for the format, the encoding and its error, and the manifest checks.
"""

from __future__ import annotations

from distill.store.capture import CaptureResult, CaptureSettings, run_capture
from distill.store.manifest import expected_identity, read_manifest, served_store, teacher_sha256
from distill.store.reader import StoreTeacher, verify_store

__all__ = ["CaptureResult", "CaptureSettings", "StoreTeacher", "run_capture", "expected_identity", "read_manifest",
           "served_store", "teacher_sha256", "verify_store"]
