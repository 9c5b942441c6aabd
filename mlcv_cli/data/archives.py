"""Checks on the members of an archive before anything is read from it: one rule for every
archive mlcv opens (CIFAR tarballs, zipped image folders), so a path that would land outside
the data dir is refused the same way wherever it comes from."""
from __future__ import annotations

import posixpath


def path_problem(name: str):
    """Why a member called ``name`` would land outside the folder it is extracted to, or None."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "has a '..' component"
    if posixpath.normpath(name.replace("\\", "/")).startswith(".."):
        return "points outside the archive"
    return None


def tar_member_problem(member):
    """Why a tar member must not be read (a path outside the archive, a link, a device), or None."""
    problem = path_problem(member.name)
    if problem:
        return problem
    if member.issym() or member.islnk():
        return f"is a link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "is a device, fifo or other special file"
    return None
