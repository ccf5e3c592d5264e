# The program's working directory, run by the supervisor (shipped as source text like
# it): the job's files written in before the program starts, and the files the
# program created or changed collected when it ends.
#
# Everything here stays inside the sandbox: the server never touches a path the
# program can write. Still, the program may have left anything behind (a process of
# its own may even be running): nothing is followed but real directories, nothing is
# read but regular files, opened with O_NOFOLLOW and checked again once open.
import os
import stat

SCAN_LIMIT = 100_000  # directory entries looked at, at most
LISTED_OMITTED = 100  # omitted files named in the list; the rest are only counted


def write_files(files):
    """[[relative name, base64]] into the working directory (the server checked the
    names; refused here too, rather than trusted)."""
    import base64

    problems = []
    for name, encoded in files:
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "" in parts or "\0" in name:
            problems.append("%s: not a relative path" % name)
            continue
        try:
            if len(parts) > 1:
                os.makedirs("/".join(parts[:-1]), mode=0o755, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o644)
            try:
                data = memoryview(base64.b64decode(encoded))
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
        except OSError as exc:
            problems.append("%s: %s" % (name, exc.strerror or exc))
    return problems


def snapshot():
    """What is in the working directory now: {name: (inode, size, mtime)}."""
    return {name: _identity(st) for name, st in _walk() if stat.S_ISREG(st.st_mode)}


def collect(before, count, file_bytes, total_bytes):
    """The files created or changed since ``before``: (name, size, data, why omitted)
    for each, in name order, and the number of omitted files not listed."""
    changed = [
        (name, st)
        for name, st in _walk()
        if not stat.S_ISDIR(st.st_mode) and before.get(name) != _identity(st)
    ]
    changed.sort()
    out, total, taken, listed_omitted, unlisted = [], 0, 0, 0, 0
    for name, st in changed:
        data, why = b"", _omitted(st, taken, count, file_bytes, total, total_bytes)
        if not why:
            data, why = _read(name, st, file_bytes)
        if why:
            if listed_omitted >= LISTED_OMITTED:
                unlisted += 1
                continue
            listed_omitted += 1
        else:
            taken += 1
            total += len(data)
        out.append((name, st.st_size, data, why))
    return out, unlisted


def _identity(st):
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _walk():
    """(relative name, lstat) of every entry under the working directory, depth first,
    never through a symbolic link, at most SCAN_LIMIT of them."""
    seen = 0
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder or "."))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > SCAN_LIMIT:
                return
            name = folder + "/" + entry.name if folder else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                pending.append(name)
            yield name, st


def _omitted(st, taken, count, file_bytes, total, total_bytes):
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > file_bytes:
        return "larger than %d bytes" % file_bytes
    if taken >= count:
        return "more than %d files" % count
    if total + st.st_size > total_bytes:
        return "over the total of %d bytes" % total_bytes
    return ""


def _read(name, st, file_bytes):
    """The file's bytes, if it is still the regular file that was listed."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return b"", "unreadable (%s)" % (exc.strerror or exc)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or now.st_ino != st.st_ino:
            return b"", "replaced while it was read"
        chunks, size = [], 0
        while size <= file_bytes:
            chunk = os.read(fd, min(1 << 20, file_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > file_bytes:
        return b"", "larger than %d bytes" % file_bytes
    return b"".join(chunks), ""
