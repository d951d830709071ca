"""The plan of a valid workflow: which tasks may run together, and the chain that bounds its length.

Also the graph walks the rules share: levels (one pass when tasks come after their
dependencies, the usual way to write a workflow; depth-first otherwise) and cycles.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import msgspec

from events import PRIORITY_RANK, TaskSpec

__all__ = ["Plan", "cycles", "levels", "plan"]



class Plan(msgspec.Struct, frozen=True):
    """Levels of tasks that may run in parallel, the longest dependency chain, and the speedup they allow."""

    levels: list[list[str]]
    critical_path: list[str]
    estimated_parallel_speedup: float


def plan(tasks: Sequence[TaskSpec]) -> Plan:
    """The plan of a workflow that `validate_workflow` accepted; O(tasks + dependencies).

    A task's level is 0 without dependencies, else 1 + the highest level among them. Within
    a level, tasks are ordered by priority (CRITICAL, HIGH, MEDIUM, LOW), then as submitted.
    The critical path is the longest dependency chain, first task first; among equally long
    chains, the one whose tasks were submitted earliest (compared from its last task back).

    Every task is assumed to take the same time (durations are unknown before running), so
    the estimated speedup is tasks / levels: the serial time over the time of running each
    level at once with unlimited workers. Raises ValueError for a repeated id, an unknown
    dependency or a cycle, all of which validation reports first.
    """
    n = len(tasks)
    if n == 0:
        return Plan(levels=[], critical_path=[], estimated_parallel_speedup=1.0)
    position = {task.id: i for i, task in enumerate(tasks)}
    if len(position) < n:
        raise ValueError("plan: task ids are not unique; validate the workflow first")
    level = levels(tasks, position, strict=True)
    if level is None:
        raise ValueError("plan: the workflow has a dependency cycle; validate it first")
    depth = max(level) + 1

    buckets: list[list[list[str]]] = [[[], [], [], []] for _ in range(depth)]
    for task, lv in zip(tasks, level, strict=True):
        buckets[lv][PRIORITY_RANK[task.priority]].append(task.id)
    ordered = [[*b[0], *b[1], *b[2], *b[3]] for b in buckets]

    # The chain ends at the first-submitted task of the deepest level; each step back takes
    # the first-submitted dependency one level up, which exists by the definition of level.
    chain = [level.index(depth - 1)]
    while level[chain[-1]]:
        up = level[chain[-1]] - 1
        chain.append(min(j for j in map(position.__getitem__, tasks[chain[-1]].dependencies) if level[j] == up))
    critical_path = [tasks[i].id for i in reversed(chain)]
    return Plan(levels=ordered, critical_path=critical_path, estimated_parallel_speedup=n / depth)


def levels(tasks: Sequence[TaskSpec], position: Mapping[str, int], strict: bool = False) -> list[int] | None:
    """Each task's level, or None if the dependencies form a cycle.

    `position` maps an id to the task it names. Unknown dependencies and dependencies on the
    task itself are ignored (the rules report them), or raise ValueError when `strict`.
    """
    level = [-1] * len(tasks)
    try:
        for i, task in enumerate(tasks):
            if task.dependencies:
                below = [level[position[d]] for d in task.dependencies]
                if min(below) < 0:  # a dependency later in the list, or itself: not one pass
                    break
                level[i] = max(below) + 1
            else:
                level[i] = 0
        else:
            return level
    except KeyError:
        pass
    return _depth_first(tasks, position, strict)


def _depth_first(tasks: Sequence[TaskSpec], position: Mapping[str, int], strict: bool) -> list[int] | None:
    """Levels by depth-first search over the dependencies, in any order; None on a cycle.

    It walks `TaskSpec.dependencies` where they are instead of building adjacency lists:
    100,000 small lists would wake the cyclic garbage collector, which then scans every task.
    """
    level = [-1] * len(tasks)  # -1: not seen; -2: on the current path; else done
    for root in range(len(tasks)):
        if level[root] != -1:
            continue
        level[root] = -2
        path = [(root, iter(tasks[root].dependencies))]
        while path:
            v, pending = path[-1]
            for d in pending:
                j = position.get(d, -1)
                if j < 0 or j == v:
                    if strict:
                        problem = "depends on itself" if j == v else f"depends on unknown task {d!r}"
                        raise ValueError(f"plan: task {tasks[v].id!r} {problem}; validate the workflow first")
                    continue
                if level[j] == -1:
                    level[j] = -2
                    path.append((j, iter(tasks[j].dependencies)))
                    break
                if level[j] == -2:
                    return None
            else:
                path.pop()
                top = max([level[j] for j in map(position.get, tasks[v].dependencies) if j is not None], default=-1)
                level[v] = top + 1 if top >= 0 else 0
    return level


def _dependency_lists(tasks: Sequence[TaskSpec], position: Mapping[str, int]) -> list[list[int]]:
    """Each task's known dependencies as positions, leaving out the task itself."""
    return [[j for j in map(position.get, task.dependencies) if j is not None and j != i and task.id != tasks[j].id]
            for i, task in enumerate(tasks)]


def cycles(tasks: Sequence[TaskSpec], position: Mapping[str, int]) -> list[tuple[int, str]]:
    """One cycle per strongly connected component, as (its first-submitted task, "a -> b -> a").

    The path is the shortest through that task; "a -> b" reads "a depends on b".
    """
    deps = _dependency_lists(tasks, position)
    found = []
    for component in _components(deps):
        if len(component) < 2:
            continue
        start = min(component)
        inside = set(component)
        parent = {start: start}
        queue = deque([start])
        last = -1
        while queue and last < 0:
            u = queue.popleft()
            for d in deps[u]:
                if d == start:
                    last = u
                    break
                if d in inside and d not in parent:
                    parent[d] = u
                    queue.append(d)
        chain = [last]
        while chain[-1] != start:
            chain.append(parent[chain[-1]])
        found.append((start, " -> ".join(tasks[k].id for k in [*reversed(chain), start])))
    return found


def _components(deps: list[list[int]]) -> list[list[int]]:
    """Strongly connected components (Tarjan's algorithm, iterative)."""
    n = len(deps)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            v, k = work[-1]
            if k < len(deps[v]):
                work[-1] = (v, k + 1)
                w = deps[v][k]
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work and low[v] < low[work[-1][0]]:
                low[work[-1][0]] = low[v]
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    component.append(w)
                    if w == v:
                        break
                components.append(component)
    return components
