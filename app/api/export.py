"""Bulk answers of POST /sample: the names as CSV or NDJSON rows, streamed chunk by chunk.

`Accept: text/csv` or `Accept: application/x-ndjson` asks for one (q-values honoured; anything
else, or none, is the JSON answer). Up to NAMEGEN_MAX_EXPORT_N (100,000) names: the engine draws
them `knobs.SAMPLE_CHUNK` rows at a time (`LanguageModel.drawing`), and each chunk is drawn and
written as bytes on a worker thread, so the event loop only passes bytes on, and the server holds
one chunk per export however many names it has (the client's reading paces the drawing). The rows
are the JSON answer's names for the same request, in the same order, with the same numbers. (With
`constraints` the names are drawn as the JSON answer is, within the constraint budget, and then
written chunk by chunk: that answer is held whole.)

CSV: a header `name,loss,percentile,novel,truncated`, then one row per name (`percentile` empty
when the model stores no reference; `novel` and `truncated` as true/false). NDJSON: one JSON
object per line, as in the JSON answer's `names`. When resampling (novel, distinct, exclude,
min_distance) found fewer than `n` names, the NDJSON stream ends with one more line,
`{"complete": false, "reason": ...}`; a CSV simply has fewer rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.responses import StreamingResponse

from app.http.metrics import count_names
from app.serving.service import Service
from model.engine.constraints.spec import Constraints
from model.engine.language_model import Condition, Drawing, LanguageModel, Sample
from model.engine.params import SamplingParams

CSV, NDJSON = "text/csv", "application/x-ndjson"
JSON_TYPES = ("application/json", "application/*", "*/*")
EXPORT_HINT = "Accept: text/csv or application/x-ndjson streams more"
ACCEPT_HELP = (
    "text/csv or application/x-ndjson: the names streamed as rows (name, loss, percentile, novel, "
    "truncated), up to NAMEGEN_MAX_EXPORT_N (100,000); otherwise the JSON answer (at most NAMEGEN_MAX_N)."
)
EXPORT_CONTENT = {
    CSV: {
        "schema": {"type": "string"},
        "example": "name,loss,percentile,novel,truncated\r\nkari,1.87,73.2,false,false\r\n",
    },
    NDJSON: {
        "schema": {"type": "string"},
        "example": '{"name":"kari","loss":1.87,"percentile":73.2,"novel":false,"truncated":false}\n',
    },
}
CSV_HEADER = b"name,loss,percentile,novel,truncated\r\n"


def export_format(accept: str | None) -> str | None:
    """CSV or NDJSON when the Accept header prefers one of them (highest q, then first listed)
    to JSON (application/json, application/*, */*), else None: the JSON answer."""
    best: tuple[float, int, str | None] | None = None
    for position, item in enumerate((accept or "").split(",")):
        media, *options = (part.strip().lower() for part in item.split(";"))
        kind = media if media in (CSV, NDJSON) else None if media in JSON_TYPES else "other"
        q = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if kind != "other" and q > 0 and (best is None or (q, -position) > best[:2]):
            best = (q, -position, kind)
    return None if best is None else best[2]


def csv_rows(names: list[Sample]) -> bytes:
    """The rows of `names` (the model's alphabet holds no comma, quote or newline)."""
    return "".join(
        f"{s.name},{s.loss!r},{'' if s.percentile is None else repr(s.percentile)},"
        f"{'true' if s.novel else 'false'},{'true' if s.truncated else 'false'}\r\n"
        for s in names
    ).encode()


def ndjson_rows(names: list[Sample]) -> bytes:
    return b"".join(orjson.dumps(s) + b"\n" for s in names)


async def export_response(
    service: Service,
    model: LanguageModel,
    n: int,
    params: SamplingParams,
    seed: int | None,
    *,
    novel: bool,
    kind: str,
    constraints: Constraints | None = None,
    condition: Condition = None,
) -> StreamingResponse:
    """The names as a streamed CSV or NDJSON response. The first chunk is drawn before the
    response starts, so a bad parameter or a full queue is still a 422 or 503. Constrained names
    are drawn as one answer (the constraint budget bounds them), then written chunk by chunk."""
    rows = csv_rows if kind == CSV else ndjson_rows
    service.check_condition(model, condition)
    if constraints is not None and not constraints.empty:
        result = await service.sample(
            model, n, params, seed, novel=novel, constraints=constraints, condition=condition
        )
        drawing = Drawing.of(result)
    else:
        drawing = model.drawing(
            n,
            params.checked(model.vocab),
            seed,
            novel=novel,
            max_rounds=service.settings.novel_max_rounds,
            condition=condition,
        )
    chunks = iter(drawing)

    sent = 0

    def next_bytes() -> bytes | None:
        nonlocal sent
        chunk = next(chunks, None)
        if chunk is None:
            return None
        sent += len(chunk)
        return rows(chunk)

    first = await service.runner.off_loop(next_bytes)
    head = CSV_HEADER if kind == CSV else b""

    async def body() -> AsyncIterator[bytes]:
        data = first
        yield head + (data or b"")
        while data is not None:
            data = await service.runner.off_loop(next_bytes, admitted=True)
            if data:
                yield data
        count_names(model.name, sent)
        if kind == NDJSON and not drawing.complete:
            yield orjson.dumps({"complete": False, "reason": drawing.reason}) + b"\n"

    return StreamingResponse(body(), media_type=kind, headers={"X-Namegen-Model": model.name})
