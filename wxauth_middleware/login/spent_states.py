"""The states this process exchanged a code for, when no store shares them: a state allows
one exchange of a code with WeChat (`callback.py` claims it before the exchange)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["SPENT_MEMORY", "SpentStates"]

# How many spent states a process remembers without the store (a few MB at most).
SPENT_MEMORY = 20_000


class SpentStates:
    """The states this process exchanged a code for, each remembered for login_max_age
    (as long as its login could come back), at most SPENT_MEMORY of them, oldest out
    first. Without the store, a state allows one exchange in each process."""

    def __init__(self, life: int, clock: Callable[[], int]) -> None:
        self._life = life
        self._clock = clock
        # Oldest first; an OrderedDict finds its oldest in O(1) (a dict skips every entry
        # deleted before it).
        self._until: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, state: str) -> bool:
        """True if `state` was not exchanged yet (it is now claimed)."""
        now = self._clock()
        with self._lock:
            until = self._until.get(state)
            if until is not None and until > now:
                return False
            self._until.pop(state, None)
            while self._until and (
                len(self._until) >= SPENT_MEMORY or next(iter(self._until.values())) <= now
            ):
                self._until.popitem(last=False)
            self._until[state] = now + self._life
            return True

    def release(self, state: str) -> None:
        with self._lock:
            self._until.pop(state, None)
