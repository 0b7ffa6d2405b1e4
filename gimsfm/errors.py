"""User-facing errors: the CLI prints them as one line and exits non-zero."""
import errno


class GimsfmError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 1


class InputError(GimsfmError):
    """Missing, empty, unreadable or malformed input."""

    exit_code = 2


class OutputExistsError(GimsfmError):
    """The output already holds results and --overwrite was not given."""

    exit_code = 3


class ReconstructionError(GimsfmError):
    """The pipeline ran but could not produce a valid result (e.g. nothing matches)."""

    exit_code = 4


class RunLockedError(GimsfmError):
    """Another live gimsfm process holds the output folder (or an HDF5 file in it)."""

    exit_code = 3


class OutputWriteError(GimsfmError):
    """Writing an output failed: disk full, file-size limit, read-only or unwritable folder."""

    exit_code = 5


# errno -> cause, for the failures a user fixes by freeing space or changing permissions (0: cause unknown)
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (file-size limit)",
                 errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
                 errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                 0: "write failed (disk full or file-size limit)"}
# The same causes as C++ libraries (HDF5, SQLite, torch) word them in their exceptions
_WRITE_TEXTS = {"no space left": errno.ENOSPC, "file too large": errno.EFBIG, "disk quota": errno.EDQUOT,
                "read-only file system": errno.EROFS, "permission denied": errno.EACCES,
                "database or disk is full": errno.ENOSPC, "attempt to write a readonly database": errno.EROFS,
                f"errno = {errno.EFBIG}": errno.EFBIG, f"errno = {errno.ENOSPC}": errno.ENOSPC,
                "file write failed": 0, "unable to extend file": 0}


def write_failure(exc: BaseException, path: object = None) -> OutputWriteError | None:
    """An OutputWriteError naming the path and the cause if `exc` (or what caused it) is a failed write.

    The path is the exception's own filename, else `path`, else the run's folder (set by RunLock)."""
    folder, seen = path or getattr(exc, "gimsfm_folder", None), set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
        if code not in _WRITE_ERRNOS:
            text = str(exc).lower()
            code = next((c for t, c in _WRITE_TEXTS.items() if t in text), None)
        if code in _WRITE_ERRNOS:
            path = getattr(exc, "filename", None) or folder
            where = f"{path}: " if path else ""
            return OutputWriteError(f"{where}{_WRITE_ERRNOS[code]}; free space or fix permissions, "
                                    "then rerun the same command to resume")
        exc = exc.__cause__ or exc.__context__
    code, path = _probe(folder) if folder else (None, None)
    if code is not None:
        return OutputWriteError(f"{path}: {_WRITE_ERRNOS[code]}; free space or fix permissions, "
                                "then rerun the same command to resume")
    return None


def _probe(folder: object) -> tuple[int | None, str | None]:
    """Why writes in `folder` fail, for libraries that do not say (SQLite: "No registered database factory
    succeeded", open3d and OpenCV: a False return): no space, no permission, or a file at the size limit."""
    import os
    import resource
    import shutil
    from pathlib import Path

    folder = Path(str(folder))
    if not folder.is_dir():
        return None, None
    if not os.access(folder, os.W_OK):
        return errno.EACCES, str(folder)
    if shutil.disk_usage(folder).free < 1 << 20:
        return errno.ENOSPC, str(folder)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        # a write stopped at (or a page short of) the limit; larger files were written before it was set
        margin = min(limit // 2, 1 << 20)
        stopped = [(p.stat().st_mtime, p) for p in folder.rglob("*")
                   if p.is_file() and limit - margin <= p.stat().st_size <= limit]
        if stopped:
            return errno.EFBIG, str(max(stopped)[1])
    return None, None
