"""`distill.fileio.shareable`: a finished folder written under mkdtemp (0700, files 0600) gets the modes the umask
gives an ordinary folder and file, so a runtime run as another user can read the model."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from distill.fileio import shareable


def umask_modes() -> tuple[int, int]:
    """(folder mode, file mode) an ordinary mkdir / open gives under this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask, 0o666 & ~mask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_mkdtemp_folder_and_its_private_files_get_the_umask_modes(tmp_path):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    (root / "adapter").mkdir(mode=0o700)
    for f in (root / "model.safetensors", root / "adapter" / "adapter_model.safetensors"):
        f.write_bytes(b"x")
        f.chmod(0o600)
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"y")
    outside.chmod(0o600)
    (root / "link").symlink_to(outside)
    assert mode(root) == 0o700
    shareable(root)
    folder, file = umask_modes()
    assert mode(root) == mode(root / "adapter") == folder
    assert mode(root / "model.safetensors") == mode(root / "adapter" / "adapter_model.safetensors") == file
    assert mode(outside) == 0o600  # a link is not followed out of the folder
