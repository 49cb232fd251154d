"""What the API says, route by route (imports `app.serving`, never `app.http` internals).

- `routes`: the JSON endpoints, each validate -> one service call -> shape.
- `export`: /sample's CSV and NDJSON answers (the Accept header), streamed chunk by chunk.
- `schemas`: request and response bodies, with limits, descriptions and examples.
- `examples`: the OpenAPI response examples (real answers of the committed checkpoints).
- `errors`: orjson responses, the 422 format (FastAPI's, bounded), settings-limit errors, the 503.
- `openapi`: the OpenAPI document: every status the server sends, the text rule as a pattern.
- `pages`: the playground at `/` and Swagger UI at `/docs`, served offline.
"""
