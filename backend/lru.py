"""A small thread-safe LRU map: per-project and per-host state stays bounded whatever clients send."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `capacity` entries; adding one more drops the least recently used (and hands it to
    `on_evict`, e.g. to shut a thread pool down)."""

    def __init__(self, capacity: int, on_evict: Callable[[V], None] | None = None):
        if capacity < 1:
            raise ValueError(f"LRU capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            evicted = self._trim()
        self._hand_over(evicted)

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        """The entry for `key`, made by `create()` (under the lock: made once) when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = self._items[key] = create()
            evicted = self._trim()
        self._hand_over(evicted)
        return value

    def _trim(self) -> list[V]:
        return [self._items.popitem(last=False)[1] for _ in range(len(self._items) - self.capacity)]

    def _hand_over(self, evicted: list[V]) -> None:
        if self._on_evict is not None:
            for old in evicted:
                self._on_evict(old)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
