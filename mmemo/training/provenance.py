"""What a run records about itself so its numbers can be traced and reproduced."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata

from mmemo.config import REPO_DIR


def git_state() -> dict:
    """Commit and dirtiness of the mmemo checkout (``None`` outside a git checkout)."""

    def run(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True,
                                    timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict:
    versions = {}
    for package in ("mmemo", "torch", "lightning", "transformers", "scikit-learn", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}
