"""Resolve what the caller named (paths, folders, s3:// URIs, inline text, base64 data) into `SourceRef`s.

This is the security boundary for files: every path is resolved to its real location and must lie under an
allowed root, so ``..`` and symlinks cannot reach outside, and must be a regular file by its ``lstat``. A local
file is not opened here (a call may name thousands, and a descriptor each would break an open-file limit of
256): the worker that indexes it opens it once, beneath that root and without following any link, and hashes
and segments that open file (`loading.open_source`). S3 reads are limited to the bucket
allow-list. Folders are walked with an explicit stack to a bounded depth, and a call takes a bounded number of
files (`Limits`). One bad item never stops the others: it becomes a `SourceFailure` with a reason the agent can
act on.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nova_mcp_server.errors import AccessDenied, InvalidInput, NotFound, NovaError
from nova_mcp_server.ingest.inline import data_uri, inline_data, inline_text
from nova_mcp_server.ingest.limits import Limits, check_size, setting_name
from nova_mcp_server.ingest.model import SourceFailure, SourceRef
from nova_mcp_server.ingest.opening import FileIdentity, refuse_special, root_of
from nova_mcp_server.ingest.s3 import S3Sources
from nova_mcp_server.ingest.s3 import parse_s3_uri as parse_s3_uri  # re-exported: callers and tests import it here
from nova_mcp_server.ingest.sniff import (
    Detected,
)
from nova_mcp_server.models import ContentInput
from nova_mcp_server.roots import file_uri_to_path, no_roots_message

log = logging.getLogger(__name__)


# One thing to resolve: the boundary model itself, so "exactly one of text, path, s3_uri or data" is one rule.
SourceItem = ContentInput


Item = SourceItem | str | os.PathLike[str] | Mapping[str, Any]


def resolve_sources(
    items: Iterable[Item],
    *,
    allowed_roots: Sequence[Path | str],
    allowed_buckets: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    recursive: bool = True,
    s3_client: Any = None,
    download_dir: Path,
    limits: Limits | None = None,
) -> tuple[list[SourceRef], list[SourceFailure]]:
    """Resolve every item; return the sources (deduplicated by URI, in order) and the failures.

    Strings are paths (``file://`` optional), ``s3://bucket/key`` URIs (a key ending in ``/`` or an empty key
    lists a prefix) or ``data:`` URIs. Folders and S3 prefixes are walked (``recursive``), skipping hidden
    entries, keeping names that match ``include`` (if given) and not ``exclude``; patterns are globs matched
    against the path relative to the folder or prefix and against the bare name. Filters apply only inside
    folders and prefixes: a file named explicitly is always taken. ``limits`` bounds the files taken, the folder
    depth walked and the bytes per file; reaching one is reported as a failure that names its setting.
    """
    resolver = _Resolver(
        roots=[Path(os.path.realpath(os.path.expanduser(str(r)))) for r in allowed_roots],
        buckets=list(allowed_buckets),
        include=[p.strip() for p in include if p.strip()],
        exclude=[p.strip() for p in exclude if p.strip()],
        recursive=recursive,
        s3_client=s3_client,
        download_dir=Path(download_dir),
        limits=limits or Limits(),
    )
    cap = resolver.limits.max_files_per_call
    sources: dict[str, SourceRef] = {}
    failures: list[SourceFailure] = []
    for item in items:
        label = _label(item)
        try:
            for result in resolver.resolve(item):
                if isinstance(result, SourceFailure):
                    failures.append(result)
                elif len(sources) >= cap and result.uri not in sources:
                    failures.append(
                        SourceFailure(
                            source=label,
                            reason=f"stopped at {cap:,} files, the most one call takes; the rest of {label} was not "
                            f"read. Index it in parts (one sub-folder per call, or include/exclude patterns), or "
                            f"raise {setting_name('max_files_per_call')}.",
                        )
                    )
                    break
                else:
                    sources.setdefault(result.uri, result)
        except NovaError as exc:
            failures.append(SourceFailure(source=label, reason=exc.text))
        except OSError as exc:
            failures.append(SourceFailure(source=label, reason=f"cannot read: {exc.strerror or exc}"))
        except Exception:  # a bug on one item fails that item (traceback in the log), never the call
            log.exception("resolving %s failed unexpectedly", label)
            failures.append(
                SourceFailure(
                    source=label,
                    reason="could not be read because of an internal error (details in the server log); the other "
                    "sources are not affected. Try it again, or report it with the server log.",
                )
            )
    return list(sources.values()), failures


def _label(item: Any) -> str:
    if isinstance(item, SourceItem):
        if item.text is not None:
            return "inline text"
        if item.data is not None:
            return f"inline {item.format or 'data'}"
        return item.path or item.s3_uri or ""
    if isinstance(item, Mapping):
        named = item.get("path") or item.get("s3_uri")
        if named:
            return named if isinstance(named, str) else _json(named)
        return "inline text" if "text" in item else "inline data"
    if not isinstance(item, (str, os.PathLike)):
        return _json(item)  # what the agent sent, in its own terms: null, [1], not Python's None, [1]
    text = os.fspath(item) if isinstance(item, os.PathLike) else item
    return text if not text.startswith("data:") else "inline data"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _problem(error: Any) -> str:
    """One pydantic error in the agent's terms: the field it is about, and the message without Python's prefix."""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {message}" if where else message


def _glob_match(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.removeprefix("./")
        if fnmatchcase(rel, pattern) or fnmatchcase(name, pattern):
            return True
        if pattern.startswith("**/") and fnmatchcase(rel, pattern[3:]):
            return True
    return False


def _dir_excluded(rel: str, patterns: Sequence[str]) -> bool:
    """A folder is pruned when it matches a pattern, or a pattern names everything inside it (``build/**``)."""
    trimmed = [p.rstrip("/").removesuffix("/**").removesuffix("/*") for p in patterns]
    return _glob_match(rel, [p for p in trimmed if p])


class _Resolver:
    def __init__(
        self,
        *,
        roots: list[Path],
        buckets: list[str],
        include: list[str],
        exclude: list[str],
        recursive: bool,
        s3_client: Any,
        download_dir: Path,
        limits: Limits,
    ) -> None:
        self.limits = limits
        self.roots = roots
        self.buckets = buckets
        self.include = include
        self.exclude = exclude
        self.recursive = recursive
        self.download_dir = download_dir
        self.s3_sources = S3Sources(
            client=s3_client,
            buckets=buckets,
            recursive=recursive,
            wanted=self._key_wanted,
            check_size=self._check_size,
        )

    def _key_wanted(self, rel: str) -> bool:
        """Whether an S3 key (relative to its listed prefix) passes this call's include/exclude patterns."""
        if self.include and not _glob_match(rel, self.include):
            return False
        return not (self.exclude and (_glob_match(rel, self.exclude) or _in_excluded_dir(rel, self.exclude)))

    def resolve(self, item: Item) -> Iterator[SourceRef | SourceFailure]:
        if isinstance(item, Mapping):
            try:
                item = SourceItem(**item)
            except ValidationError as exc:
                problems = "; ".join(_problem(e) for e in exc.errors())
                raise InvalidInput(
                    f"{problems}.", "Each item is an object with one of text, path, s3_uri, data."
                ) from None
        if isinstance(item, SourceItem):
            if item.text is not None:
                yield inline_text(item.text, item.format)
            elif item.data is not None:
                yield inline_data(item.data, item.format)
            elif item.s3_uri is not None:
                yield from self._s3_item(item.s3_uri)
            else:
                yield from self._path_item(str(item.path))
            return
        if not isinstance(item, (str, os.PathLike)):
            raise InvalidInput(
                f"{_json(item)} is not a source.",
                "Give a path or s3:// URI as a string, or an object with one of text, path, s3_uri, data.",
            )
        text = os.fspath(item) if isinstance(item, os.PathLike) else item
        if text[:3].lower() == "s3:":
            yield from self._s3_item(text)
        elif text[:5].lower() == "data:":
            yield data_uri(text)
        else:
            yield from self._path_item(text)

    # ---- files ----------------------------------------------------------------------------------------------

    def _allowed(self, real: Path, given: str) -> Path:
        if not self.roots:
            raise AccessDenied(f"{given} cannot be read.", no_roots_message())
        if any(real == root or real.is_relative_to(root) for root in self.roots):
            return real
        raise AccessDenied(
            f"{given} is outside the allowed roots (it resolves to {real}).",
            "Allowed roots: " + ", ".join(str(r) for r in self.roots) + ". Move the file under one of them or "
            "add its folder to NOVA_MCP_ALLOWED_ROOTS.",
        )

    def _path_item(self, given: str) -> Iterator[SourceRef | SourceFailure]:
        raw = given
        scheme = given.split("://", 1)[0] if "://" in given else ""  # one letter: a Windows drive, not a scheme
        if len(scheme) > 1 and scheme.lower() != "file" and scheme.isascii() and scheme.replace("+", "").isalnum():
            raise InvalidInput(
                f"{given} is a {scheme}:// URL; web and other remote URLs are not read.",
                "Give a local path (or file:// URI) under an allowed root, or an s3:// URI; to index a web page, "
                "save it to a file first.",
            )
        if given[:7].lower() == "file://":  # as clients write their roots: percent-encoded, maybe `localhost`
            try:
                raw = str(file_uri_to_path(given))
            except ValueError as exc:
                raise InvalidInput(f"{given} is not a local file URI: {exc}.", "Give an absolute path.") from None
        if not raw.strip():
            raise InvalidInput("empty path.")
        if "\x00" in raw:
            raise InvalidInput(f"{json.dumps(given)} contains a NUL character, which no file name can hold.")
        expanded = os.path.expanduser(raw)
        real = Path(os.path.realpath(expanded))
        if self.roots and not os.path.isabs(expanded) and root_of(real, self.roots) is None:
            raise AccessDenied(  # the working directory is the client's choice, unseen by the agent
                f"{given} is a relative path: it resolves against the server's working directory "
                f"({os.getcwd()}) to {real}, outside the allowed roots.",
                "Give an absolute path under one of: " + ", ".join(str(r) for r in self.roots) + ".",
            )
        real = self._allowed(real, given)
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            what = "is a broken symlink" if os.path.islink(os.path.expanduser(raw)) else "does not exist"
            raise NotFound(f"{given} {what}.") from None
        if stat.S_ISDIR(mode):
            yield from self._walk(real, given)
        else:
            yield self._file(real, given)

    def _file(self, real: Path, display: str) -> SourceRef:
        """Look at the file without opening it: a regular file (by ``lstat``: ``real`` is a real path, so a link
        here appeared after the root check) within the byte limit. The worker opens it, once."""
        root = root_of(real, self.roots)
        if root is None:  # _allowed said yes; a root can only be missing here if it was given as a file
            raise AccessDenied(f"{display} is outside the allowed roots.")
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            raise NotFound(
                f"{display} does not exist (any more).", "Check the path, or list the folder again."
            ) from None
        if stat.S_ISLNK(st.st_mode):
            raise AccessDenied(
                f"{display} became a symbolic link after the root check; links are not followed.",
                "Name the file's real path under an allowed root.",
            )
        refuse_special(st.st_mode, display)
        check_size(st.st_size, display, self.limits)
        return SourceRef(
            uri=f"file://{real}",
            display=display,
            kind="file",
            size=st.st_size,
            local_path=real,
            root=root,
            identity=FileIdentity.of(st),
        )

    def _check_size(self, size: int, display: str, found: Detected | None) -> None:
        check_size(size, display, self.limits, text=found is not None and found.modality.value == "text")

    def _walk(self, top: Path, shown_top: str) -> Iterator[SourceRef | SourceFailure]:
        """Files under ``top`` in name order (depth first), named as the caller would see them.

        An explicit stack (not recursion) walks at most ``max_folder_depth`` levels below ``top``; a deeper folder
        is reported once and skipped. Symlinked entries are resolved and must stay inside the roots; each real
        folder is walked once. Special files (FIFOs, sockets, devices) are refused by `_file`'s ``lstat``.
        """
        seen: set[Path] = set()
        stack: list[tuple[Iterator[os.DirEntry[str]], str, str, int]] = []

        def push(folder: Path, rel: str, shown: str, depth: int) -> SourceFailure | None:
            seen.add(folder)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                return SourceFailure(source=shown, reason=f"cannot list folder: {exc.strerror or exc}")
            stack.append((iter(entries), rel, shown, depth))
            return None

        if (failure := push(top, "", shown_top, 0)) is not None:
            yield failure
        while stack:
            entries, rel, shown, depth = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            if entry.name.startswith("."):
                continue
            entry_rel = f"{rel}/{entry.name}" if rel else entry.name
            entry_shown = os.path.join(shown, entry.name)
            try:
                if entry.is_dir():
                    if not self.recursive or (self.exclude and _dir_excluded(entry_rel, self.exclude)):
                        continue
                    real = self._allowed(Path(os.path.realpath(entry.path)), entry_shown)
                    if real in seen:
                        continue
                    if depth + 1 > self.limits.max_folder_depth:
                        yield SourceFailure(
                            source=entry_shown,
                            reason=f"folder nested more than {self.limits.max_folder_depth} levels below "
                            f"{shown_top}; it was not read. Name it directly, or raise "
                            f"{setting_name('max_folder_depth')}.",
                        )
                        continue
                    if (failure := push(real, entry_rel, entry_shown, depth + 1)) is not None:
                        yield failure
                    continue
                if self.include and not _glob_match(entry_rel, self.include):
                    continue
                if self.exclude and _glob_match(entry_rel, self.exclude):
                    continue
                yield self._file(self._allowed(Path(os.path.realpath(entry.path)), entry_shown), entry_shown)
            except NovaError as exc:
                yield SourceFailure(source=entry_shown, reason=exc.text)
            except OSError as exc:
                yield SourceFailure(source=entry_shown, reason=f"cannot read: {exc.strerror or exc}")

    def _s3_item(self, uri: str) -> Iterator[SourceRef | SourceFailure]:
        yield from self.s3_sources.item(uri)


def _in_excluded_dir(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")[:-1]
    return any(_dir_excluded("/".join(parts[: i + 1]), patterns) for i in range(len(parts)))
