"""Round-robin across servers, and across members within each server: one server per turn, one member per turn
of that server, each member's requests in arrival order.

Every operation the scheduler makes per request (push, pop, remove, len) is O(1) in the length of the line
(a member holds at most `USER_MAX_PENDING` requests); only `order`, which the scheduler asks for at most once
per report interval, walks the whole line.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar


class _Queued(Protocol):
    user_id: int

    @property
    def group(self) -> Hashable: ...


ItemT = TypeVar("ItemT", bound=_Queued)
KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")


class _Ring(Generic[KeyT, ValueT]):
    """Keys served in turn: the one served goes to the back if it still has something waiting."""

    def __init__(self) -> None:
        self.members: OrderedDict[KeyT, ValueT] = OrderedDict()

    def first(self) -> tuple[KeyT, ValueT]:
        return next(iter(self.members.items()))

    def served(self, key: KeyT, still_waiting: bool) -> None:
        if still_waiting:
            self.members.move_to_end(key)
        else:
            del self.members[key]


class FairQueue(Generic[ItemT]):
    """With k servers waiting, every server gets one start in every k, whatever its number of members; within
    a server, every waiting member gets one start in every m, whatever their backlog. A new server, or a new
    member of a server, joins at the back. Direct messages are one server (`group` None), so many accounts in
    DMs share one turn like the members of one server."""

    def __init__(self) -> None:
        self._groups: _Ring[Hashable, _Ring[int, deque[ItemT]]] = _Ring()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def push(self, item: ItemT) -> None:
        users = self._groups.members.get(item.group)
        if users is None:
            users = self._groups.members[item.group] = _Ring()
        users.members.setdefault(item.user_id, deque()).append(item)
        self._count += 1

    def remove(self, item: ItemT) -> bool:
        users = self._groups.members.get(item.group)
        queue = users.members.get(item.user_id) if users is not None else None
        if users is None or queue is None or item not in queue:
            return False
        queue.remove(item)
        self._count -= 1
        if not queue:
            del users.members[item.user_id]
            if not users.members:
                del self._groups.members[item.group]
        return True

    def pop(self) -> ItemT:
        group, users = self._groups.first()
        user, queue = users.first()
        item = queue.popleft()
        self._count -= 1
        users.served(user, bool(queue))
        self._groups.served(group, bool(users.members))
        return item

    def clear(self) -> list[ItemT]:
        items = [item for users in self._groups.members.values() for queue in users.members.values() for item in queue]
        self._groups.members.clear()
        self._count = 0
        return items

    def order(self) -> list[ItemT]:
        """The waiting items in the order `pop` would return them if nothing changes: O(n)."""
        return _interleave(
            [_interleave([list(queue) for queue in users.members.values()]) for users in self._groups.members.values()]
        )


def _interleave(lists: list[list[ItemT]]) -> list[ItemT]:
    """Round-robin over `lists`, in turn, until all are used up: [a1 a2] [b1] [c1 c2 c3] -> a1 b1 c1 a2 c2 c3."""
    order: list[ItemT] = []
    depth = 0
    while lists:
        order.extend(items[depth] for items in lists)
        depth += 1
        lists = [items for items in lists if len(items) > depth]
    return order
