"""Finding and deleting a source's vectors exactly, on every store and every S3 Vectors index mode.

A filtered query is approximate on S3 Vectors CLASSIC indexes (filters run during the vector search, so a
selective filter may return fewer matches than exist, even none), so it must never be used to enumerate.
Two exact ways instead:

- `existing_keys`: the deterministic keys ``key_for(0), key_for(1), ...`` looked up with `get_vectors` in
  batches of 100 until ``stop_after_misses`` keys in a row are absent. Cost follows the source's size.
- `keys_with_prefix`: every key of the index through `list_vectors` (keys only), kept when they start with
  a prefix. Cost follows the index's size, but it finds keys past any gap.

`delete_keys` deletes each key once, and `delete_until_gone` repeats find-then-delete while new keys keep
appearing; a key seen again (a delete not yet visible, a store that answers stale) is never deleted twice
and can never make the loop spin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from nova_mcp_server.errors import BackendUnavailable
from nova_mcp_server.stores.base import MAX_DELETE, MAX_GET, MAX_LIST_PAGE, VectorStore


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def existing_keys(
    store: VectorStore,
    index: str,
    key_for: Callable[[int], str],
    *,
    start: int = 0,
    stop_after_misses: int = MAX_DELETE,
) -> list[str]:
    """The keys ``key_for(start), key_for(start + 1), ...`` that exist, in ordinal order.

    Stops after ``stop_after_misses`` absent ordinals in a row (default one full put batch, so a batch that
    failed to land in the middle of a source does not hide the ones after it).
    """
    found: list[str] = []
    ordinal = start
    misses = 0
    while misses < stop_after_misses:
        batch = [key_for(n) for n in range(ordinal, ordinal + MAX_GET)]
        present = {r.key for r in store.get_vectors(index, batch, return_data=False, return_metadata=False)}
        for key in batch:
            if key in present:
                found.append(key)
                misses = 0
            else:
                misses += 1
                if misses >= stop_after_misses:
                    break
        ordinal += MAX_GET
    return found


def all_keys(store: VectorStore, index: str) -> Iterator[str]:
    """Every key of the index, page by page; refuses a pagination token that comes back (a loop)."""
    token: str | None = None
    seen_tokens: set[str] = set()
    while True:
        page = store.list_vectors(index, max_results=MAX_LIST_PAGE, next_token=token)
        for record in page.vectors:
            yield record.key
        token = page.next_token
        if not token:
            return
        if token in seen_tokens:
            raise BackendUnavailable(f"Listing index '{index}' returned a page token twice; stopped to avoid a loop.")
        seen_tokens.add(token)


def keys_with_prefix(store: VectorStore, index: str, prefix: str) -> list[str]:
    """Every key of the index that starts with ``prefix``, each once (exact, whatever the index mode)."""
    return list(dict.fromkeys(k for k in all_keys(store, index) if k.startswith(prefix)))


def delete_keys(store: VectorStore, index: str, keys: Iterable[str], *, seen: set[str] | None = None) -> int:
    """Delete ``keys`` in batches of 500, each key once (also across calls sharing ``seen``); returns the count."""
    seen = set() if seen is None else seen
    fresh = [k for k in dict.fromkeys(keys) if k not in seen]
    for batch in _batches(fresh, MAX_DELETE):
        store.delete_vectors(index, batch)
        seen.update(batch)
    return len(fresh)


def delete_until_gone(
    store: VectorStore, index: str, find: Callable[[], Iterable[str]], *, max_rounds: int = 100
) -> int:
    """Repeat ``find()`` then delete what it found, until it finds nothing not already deleted.

    A key ``find`` reports again after we deleted it is skipped, so the loop ends even when deletes are
    not yet visible; ``max_rounds`` only bounds a ``find`` that keeps inventing new keys.
    """
    seen: set[str] = set()
    total = 0
    for _ in range(max_rounds):
        deleted = delete_keys(store, index, find(), seen=seen)
        if not deleted:
            return total
        total += deleted
    raise BackendUnavailable(f"Index '{index}' kept reporting new keys to delete after {max_rounds} rounds.")
