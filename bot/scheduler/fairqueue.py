"""Round-robin across users: the waiting requests of each user in arrival order, one user per turn."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, Protocol, TypeVar


class _HasUser(Protocol):
    user_id: int


ItemT = TypeVar("ItemT", bound=_HasUser)


class FairQueue(Generic[ItemT]):
    """A user who is served goes to the back of the line if they still have requests waiting; a new user joins
    at the back. So with k users waiting, every user gets one start in every k, whatever their backlog."""

    def __init__(self) -> None:
        self._ring: OrderedDict[int, deque[ItemT]] = OrderedDict()  # next user first

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._ring.values())

    def __bool__(self) -> bool:
        return bool(self._ring)

    def push(self, item: ItemT) -> None:
        self._ring.setdefault(item.user_id, deque()).append(item)

    def remove(self, item: ItemT) -> bool:
        queue = self._ring.get(item.user_id)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        if not queue:
            del self._ring[item.user_id]
        return True

    def pop(self) -> ItemT:
        user, queue = next(iter(self._ring.items()))
        item = queue.popleft()
        if queue:
            self._ring.move_to_end(user)
        else:
            del self._ring[user]
        return item

    def clear(self) -> list[ItemT]:
        items = [item for queue in self._ring.values() for item in queue]
        self._ring.clear()
        return items

    def order(self) -> list[ItemT]:
        """The waiting items in the order `pop` would return them if nothing changes."""
        queues = [list(queue) for queue in self._ring.values()]
        order: list[ItemT] = []
        depth = 0
        while queues:
            order.extend(queue[depth] for queue in queues)
            depth += 1
            queues = [queue for queue in queues if len(queue) > depth]
        return order
