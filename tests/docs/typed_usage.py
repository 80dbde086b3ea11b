"""What a user's type checker sees: tests/docs/test_types.py runs ``mypy --strict`` on this
file and compares each ``reveal_type`` with the comment beside it. Never imported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pysos

if TYPE_CHECKING:
    with pysos.Dict("data/users") as users:
        reveal_type(users)  # pysos.dict.Dict
        users["alice"] = {"langs": ["python"]}
        reveal_type(users["alice"])  # Any
        reveal_type(users.get("bob"))  # Any
        reveal_type(users.stats())  # dict[str, Any]
        reveal_type(users.compact())  # dict[str, Any]
        reveal_type(list(users.items()))  # list[tuple[Any, Any]]
        with users.batch():
            users.update({"a": 1})

    with pysos.List("data/events", durability="fsync") as events:
        reveal_type(events)  # pysos.list.List
        events.append({"type": "start"})
        reveal_type(events[0])  # Any
        reveal_type(events[1:3])  # list[Any]
        events += [1, 2]
        reveal_type(events)  # pysos.list.List

    store = pysos.open("data/users", "r")
    reveal_type(store)  # pysos.dict.Dict | pysos.list.List
    reveal_type(pysos.open("data/config", "c", lock_timeout=1.0))  # pysos.dict.Dict | pysos.list.List
    reveal_type(pysos.check("data/users"))  # list[dict[Any, Any]]

    def on_change(key: Any, new: Any, old: Any) -> None:
        print(key, new, old)

    users.observe(on_change)
    pysos.Dict("data/users", "c")  # type: ignore[arg-type]  # options are keyword-only
    pysos.Dict("data/users", readonly="yes")  # type: ignore[arg-type]  # readonly is a bool
    reveal_type(pysos.LockedError("x"))  # pysos.errors.LockedError
