"""The answers of the MCP tools as pydantic models, whose JSON schemas are the output schemas.

Field descriptions reach the client in the output schema, so they say what a value means.
Answers leave out fields without a value (``null``), and the published schemas are compact
(``compact_schema``): clients check every answer against them, and the SDK's Python client
spends most of a large answer's time there (pure-Python jsonschema, about 10 µs a value).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import BaseModel, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue

#: Counting matches stops here: an exact count over a million rows costs tens of milliseconds,
#: and "at least 10,000" is as useful to a reader as the exact number.
COUNT_CAP = 10_000
#: What a page of a list answer may hold at most (``limit``); ``next_cursor`` continues it.
LIST_PAGE = 50
FAILED_PAGE = 25
_CURSOR = "Pass it as `cursor` (with the same or no filters) for the next page; absent at the end."


@cache
def compact_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema as clients check answers fastest: nested models written in
    place (no ``$ref``: a lookup per item), an optional value as ``"type": [T, "null"]`` (not
    ``anyOf``, which tries each branch), no titles or defaults; and the items of a list are
    checked as objects with their required fields, their fields described in words
    (``_described``), not typed one by one. Checking a page of fifty executions costs a
    sixth of what pydantic's own schema does (0.8 against 4.8 ms in the SDK's client)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            inner = walk(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]]))
            return {**inner, **{k: walk(v) for k, v in node.items() if k != "$ref"}}
        out = {k: walk(v) for k, v in node.items() if k not in ("title", "default")}
        options = out.get("anyOf")
        if isinstance(options, list) and all(set(o) == {"type"} for o in options):
            del out["anyOf"]
            types = [o["type"] for o in options]
            out["type"] = types[0] if len(types) == 1 else types
        elif isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
            # an optional nested model: its object schema, and null
            (inner,) = [o for o in options if o != {"type": "null"}]
            del out["anyOf"]
            out = {**inner, **out, "type": [inner.get("type", "object"), "null"]}
        items = out.get("items")
        if out.get("type") == "array" and isinstance(items, dict) and "properties" in items:
            out["items"] = _described(items)
        return out

    result: dict[str, Any] = walk(schema)
    return result


def _described(item: dict[str, Any]) -> dict[str, Any]:
    """A list item's schema with its fields in its description instead of ``properties``:
    ``name (type): what it means``, optional ones marked so. A client then checks each item in
    two steps (an object, with the required fields), not one per field: a list's items are
    most of an answer."""
    required = item.get("required", [])
    fields = []
    for name, field in item["properties"].items():
        types = field.get("type", "object")
        kind = "/".join(t for t in ([types] if isinstance(types, str) else types) if t != "null")
        note = "" if name in required else ", optional"
        meaning = f": {field['description'].rstrip('.')}" if field.get("description") else ""
        fields.append(f"{name} ({kind}{note}){meaning}.")
    text = f"{item.get('description', '')} Fields: {' '.join(fields)}".strip()
    return {"type": "object", "required": required, "description": text}


@cache
def published(model: type[BaseModel]) -> type[BaseModel]:
    """The output type a tool declares for ``model``: the same model, whose JSON schema is
    ``compact_schema(model)``."""
    compact = compact_schema(model)

    def schema(cls: type[BaseModel], core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return copy.deepcopy(compact)

    attributes = {"__get_pydantic_json_schema__": classmethod(schema), "__doc__": model.__doc__}
    return type(model.__name__, (model,), attributes)


class Window(BaseModel):
    """How the time arguments were understood: canonical UTC bounds plus a phrase."""

    since: str | None = Field(
        None, description="Inclusive lower bound on started_at (UTC); absent: no lower bound."
    )
    until: str | None = Field(None, description="Exclusive upper bound on started_at (UTC).")
    understood_as: str = Field(description="The bounds in words, e.g. 'last 24h'.")


class ExecutionSummary(BaseModel):
    """One attempt, compact: enough to pick what to look at next (tasks_by_trace has the rest)."""

    trace_id: str = Field(description="The logical run; pass it to tasks_by_trace.")
    task_slug: str
    attempt: int
    status: str
    started_at: str
    duration_ms: float | None = Field(None, description="Absent while running.")
    error_type: str | None = None
    error_message: str | None = Field(None, description="First line, shortened.")


class ExecutionList(BaseModel):
    """Answer of tasks_list."""

    window: Window
    executions: list[ExecutionSummary] = Field(description="Newest first.")
    returned: int
    total_matching: int = Field(
        description="How many executions match the filters: exact at any size when the only "
        f"filters are task_slug and status (the rollups count them), else counting stops at "
        f"{COUNT_CAP:,}."
    )
    total_is_exact: bool = Field(description=f"False when counting stopped at {COUNT_CAP:,}.")
    truncated: bool = Field(description="True when more match than this page returned.")
    next_cursor: str | None = Field(None, description=f"Where the next page starts. {_CURSOR}")
    hint: str | None = Field(None, description="What to try when the answer is empty.")


class RunOutcome(BaseModel):
    """How a logical run (all attempts of one trace) ended."""

    final_status: str = Field(description="Status of the last attempt recorded.")
    succeeded: bool
    attempts: int = Field(description="Attempts recorded for the run.")
    recovered: bool = Field(description="A failed attempt was followed by a successful retry.")
    summary: str


class Attempt(BaseModel):
    """One attempt of a run with everything needed to debug it."""

    attempt: int
    span_id: str
    retry_of: str | None = None
    status: str
    started_at: str
    ended_at: str | None = None
    duration_ms: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    stack_hash: str | None = Field(None, description="Error group fingerprint.")
    first_occurrence: bool = Field(description="This attempt is the first ever of its error group.")
    host: str | None = None
    content: str | None = None
    attributes: dict[str, Any]


class TraceDetail(BaseModel):
    """Answer of tasks_by_trace."""

    trace_id: str
    task_slug: str
    task_id: str
    outcome: RunOutcome
    attempts: list[Attempt] = Field(description="In attempt order.")


class Failure(BaseModel):
    """One failed run: its latest failed attempt, why it failed, and how the run ended."""

    trace_id: str = Field(description="Pass it to tasks_by_trace for every attempt and stack.")
    task_slug: str
    status: str = Field(description="failed, timeout or abandoned.")
    started_at: str = Field(description="When that attempt started.")
    attempt: int = Field(description="Number of that attempt.")
    failed_attempts: int = Field(description="Attempts of this run that failed.")
    duration_ms: float | None = None
    error_type: str | None = None
    error_message: str | None = Field(None, description="First line, shortened.")
    culprit: str | None = Field(None, description="Innermost stack frame: file:line in function.")
    stack_hash: str | None = Field(
        None, description="The error group: its numbers are in distinct_errors."
    )
    final_status: str = Field(description="Status of the run's last attempt recorded.")
    run: str = Field(description="How the run ended after its retries, in words.")


class ErrorSummary(BaseModel):
    """One distinct error (error group: same stack hash) among the failed runs listed."""

    stack_hash: str
    error_type: str | None = None
    error_message: str | None = Field(None, description="First line, shortened.")
    runs_listed: int = Field(description="How many of the listed runs failed with it.")
    occurrences: int = Field(description="Failed attempts with this stack hash, all time.")
    first_seen: str
    last_seen: str
    is_new: bool = Field(description="First seen less than 24h before a listed failure.")


class FailureReport(BaseModel):
    """Answer of tasks_last_failed."""

    window: Window
    summary: str = Field(description="The answer in a few sentences.")
    failures: list[Failure] = Field(description="One per failed run, newest first.")
    distinct_errors: list[ErrorSummary] = Field(
        description="New errors first, then the most frequent in this list."
    )
    returned: int
    truncated: bool = Field(description="True when older failed runs were left out.")
    next_cursor: str | None = Field(None, description=f"Where the next page starts. {_CURSOR}")
    hint: str | None = None


class Alert(BaseModel):
    """One alert that `taskexec check` opened: what it found, about which task, since when."""

    kind: str = Field(
        description="What was found: missed (no run for a due slot), late (started after its "
        "slot plus grace), stuck (running, not heard from), long (longer than expected), "
        "new_error (an error group never seen before), regression (a known error back after a "
        "quiet spell or a streak of successes) or spike (failure rate jumped)."
    )
    task_slug: str
    title: str = Field(description="One line: what was found.")
    detail: str | None = Field(
        None, description="The numbers behind it (allowance, durations, text)."
    )
    state: str = Field(description="open, or resolved once a check no longer found it.")
    since: str | None = Field(None, description="When the problem started, if known (UTC).")
    opened_at: str = Field(description="When a check opened it (its latest opening, UTC).")
    last_seen_at: str = Field(description="The latest check that still found it (UTC).")
    resolved_at: str | None = Field(None, description="When it resolved (UTC); absent while open.")
    trace_id: str | None = Field(
        None,
        description="The run to look at, when the finding names one; pass it to tasks_by_trace.",
    )
    span_id: str | None = Field(
        None, description="The attempt to look at, when the finding names one."
    )
    stack_hash: str | None = Field(
        None, description="The error group, for new_error and regression."
    )
    times_opened: int = Field(description="How often it opened; above 1 it keeps coming back.")


class AlertCounts(BaseModel):
    """How many alerts there are in each state (for the task, when one is given)."""

    open: int
    resolved: int = Field(description=f"Counting stops at {COUNT_CAP:,}.")


class AlertList(BaseModel):
    """Answer of tasks_alerts."""

    summary: str = Field(description="The answer in one line.")
    state: str = Field(description="Which alerts were asked for: open, resolved or all.")
    alerts: list[Alert] = Field(description="Newest opened first.")
    counts: AlertCounts
    returned: int
    truncated: bool = Field(description="True when more alerts match than were returned.")
    hint: str | None = Field(None, description="What to try when the answer is empty.")
