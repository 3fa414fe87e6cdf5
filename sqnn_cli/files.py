"""Output files and directories: checked before any work starts, written so that nothing
is ever half-written or lost.

Every writer puts its data into a hidden sibling of the target first,
``.NAME.PID.TOKEN.partial``, and renames it into place. The writer's PID in the name
lets the next run that writes the same target remove what a killed run left behind,
without touching what a live concurrent writer is still writing.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError, ParameterError

__all__ = [
    "check_output_directory",
    "check_output_location",
    "check_not_an_input",
    "check_output_file",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "staging_directory",
    "replace_directory",
    "remove_stale_temporaries",
    "remove_tree",
]

PARTIAL, RETIRED = "partial", "old"
_FALLBACK_NAME_MAX = 255
# ".{stem}.{pid}.{token}.{suffix}": the longest pid (7 digits on Linux), an 8-hex token and
# the suffix take at most this many bytes beside the stem.
_TEMPORARY_OVERHEAD = 32
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

MSG_UNDER_A_FILE = "cannot write '{path}': '{parent}' is a file, not a directory; choose another output path"
MSG_NAME_TOO_LONG = (
    "cannot write '{path}': the name '{name}' is {length} bytes, more than this filesystem allows ({limit}); "
    "choose a shorter name"
)
MSG_PATH_TOO_LONG = "cannot write '{path}': the path is {length} bytes, more than this system allows ({limit})"
MSG_NOT_WRITABLE = "cannot write in '{directory}' ({reason}); choose another output path"
MSG_NOT_A_DIRECTORY = "cannot write in '{path}': it exists and is not a directory; choose another output path"
MSG_IS_AN_INPUT = "output '{path}' is the input '{source}'; writing it would destroy that input, choose another output path"


# -- checks made before any work starts --------------------------------------------------
def check_output_location(path: str | Path) -> None:
    """Refuse, before any work is done, a path that a file or directory could not be
    renamed into: one under a file, a name or path too long, an unwritable directory.

    The probe creates and removes an entry in the directory that will hold ``path`` (or
    the nearest existing one above it), so read-only filesystems, permissions, ACLs and
    full inode tables all answer as they would at the end of a long run.
    """
    target = Path(os.path.abspath(path))
    existing = _nearest_existing_directory(target)
    limit = _name_max(existing)
    for part in target.relative_to(existing).parts:
        length = len(os.fsencode(part))
        if length > limit:
            shown = part if len(part) <= 40 else f"{part[:37]}..."
            raise InputError(MSG_NAME_TOO_LONG.format(path=_shown(path), name=shown, length=length, limit=limit))
    path_limit = _path_max(existing)
    if len(os.fsencode(str(target))) >= path_limit:
        raise InputError(MSG_PATH_TOO_LONG.format(path=_shown(path), length=len(os.fsencode(str(target))), limit=path_limit))
    _probe(existing)


def check_output_directory(path: str | Path) -> None:
    """Refuse, before any work is done, a directory that files could not be written into
    (``sqnn sweep-gamma --out``): an existing one is probed itself, a missing one where
    it would be created."""
    # os.path's predicates answer False where Path.exists() raises (a name too long).
    if os.path.isdir(path):
        _probe(Path(path))
    elif os.path.lexists(path):
        raise InputError(MSG_NOT_A_DIRECTORY.format(path=_shown(path)))
    else:
        check_output_location(path)


def check_output_file(path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work is done, an output file that writing would have to refuse: one
    of the command's ``inputs``, an unwritable place, a directory, an existing file without
    ``overwrite``."""
    path = Path(path)
    check_not_an_input(path, inputs)
    check_output_location(path)
    if path.is_dir():
        raise InputError(f"output path '{path}' is a directory")
    if os.path.lexists(path) and not overwrite:
        raise ParameterError("output file '{path}' already exists; pass {overwrite} to replace it", path=path)
    return path


def check_not_an_input(path: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an output that is one of the command's own inputs (the same file or
    directory by any name: a hard link, a symbolic link, a relative path)."""
    target = Path(path)
    for source in inputs:
        source = Path(source)
        if _same(target, source):
            raise InputError(MSG_IS_AN_INPUT.format(path=_shown(target), source=_shown(source)))


def _same(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them is missing, so writing one cannot destroy the other
        return False


def _nearest_existing_directory(target: Path) -> Path:
    """The deepest ancestor of ``target`` that exists; a file there is refused."""
    for ancestor in target.parents:
        if os.path.lexists(ancestor) or ancestor == ancestor.parent:
            if not ancestor.is_dir():
                raise InputError(MSG_UNDER_A_FILE.format(path=_shown(target), parent=_shown(ancestor)))
            return ancestor
    raise AssertionError("the root directory exists")  # pragma: no cover


def _probe(directory: Path) -> None:
    probe = directory / f".sqnn-probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        os.mkdir(probe, 0o700)
        os.rmdir(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = {errno.EROFS: "read-only filesystem"}.get(exc.errno, "permission denied")
        raise InputError(MSG_NOT_WRITABLE.format(directory=_shown(directory), reason=reason)) from None


def _name_max(directory: Path) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        return _FALLBACK_NAME_MAX


def _path_max(directory: Path) -> int:
    try:
        return int(os.pathconf(directory, "PC_PATH_MAX"))
    except (OSError, ValueError, AttributeError):
        return 4096


def _shown(path: str | Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]}"


# -- temporary names and their cleanup ---------------------------------------------------
def _stem(name: str) -> str:
    """The target's name as it appears in its temporaries; a name too long to carry the
    PID and suffix beside it is replaced by its digest, the same for every run."""
    if len(os.fsencode(name)) + _TEMPORARY_OVERHEAD <= _FALLBACK_NAME_MAX:
        return name
    return "sqnn-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:32]


def _temporary(target: Path, suffix: str) -> Path:
    return target.with_name(f".{_stem(target.name)}.{os.getpid()}.{secrets.token_hex(4)}.{suffix}")


def _temporary_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(_stem(target.name))}\.(\d+)\.[0-9a-f]{{8}}\.(?:{PARTIAL}|{RETIRED})")


def is_temporary_of(name: str, target_name: str) -> bool:
    """Whether ``name`` is one of the temporaries a write of ``target_name`` makes."""
    return _temporary_pattern(Path(target_name)).fullmatch(name) is not None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():  # another thread of this process may be writing
        return True
    if sys.platform == "win32":
        # os.kill(pid, 0) terminates the process on Windows; without a safe probe, every
        # temporary is treated as a live writer's and kept.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # alive under another user / not a real pid
        return True
    return True


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the temporaries that killed writers of ``target`` left beside it; returns
    what was removed. Those of a live writer, and anything not named like a temporary of
    this very target, are left alone."""
    target = Path(target)
    pattern = _temporary_pattern(target)
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        remove_tree(Path(entry.path))
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


# -- atomic writes -----------------------------------------------------------------------
def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` fill a temporary sibling of ``path``, flush it to disk and rename it
    into place: a reader sees the old file or the new one, and an interruption leaves the
    old one (and nothing else once the next run has cleaned up)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = _temporary(target, PARTIAL)
    # O_EXCL: the name is fresh, never a file or link someone placed there; 0o666 lets the
    # umask decide the mode, as for any file a program creates.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(temporary)
        _fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return target


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def staging_directory(target: str | Path) -> Path:
    """A fresh hidden directory beside ``target`` to write its new content into."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    staging = _temporary(target, PARTIAL)
    os.mkdir(staging, 0o777)  # the umask decides, as for the bundle directory itself
    return staging


def replace_directory(staging: Path, target: Path) -> None:
    """Put the complete directory ``staging`` at ``target``, removing what was there.

    At every instant ``target`` holds the old directory or the new one: on Linux the two
    are swapped by one renameat2(RENAME_EXCHANGE) and the old one is then removed under the
    staging name. Where that call is missing (other systems, old kernels or libcs, some
    filesystems), the old directory is renamed aside before the new one is renamed in,
    which leaves ``target`` briefly absent between the two renames.
    """
    if not os.path.lexists(target):
        os.replace(staging, target)
    elif _exchange(staging, target):
        remove_tree(staging)  # now the old directory (or the link that stood at target)
    else:
        retired = _temporary(target, RETIRED)
        os.replace(target, retired)
        try:
            os.replace(staging, target)
        except BaseException:
            # Under its temporary name the old directory would be removed by the next
            # writer as a leftover: put it back.
            os.replace(retired, target)
            raise
        remove_tree(retired)
    _fsync_directory(target.parent)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, or a file or link, as far as possible; a leftover keeps its
    temporary name, so the next writer of the same target removes it."""
    if os.path.islink(path) or os.path.isfile(path):
        Path(path).unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28, musl >= 1.2.2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
