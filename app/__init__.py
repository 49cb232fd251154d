"""namegen's HTTP shell over `model.engine.language_model.LanguageModel`.

- `__main__`: `python -m app`, the one serve command (flags over NAMEGEN_* settings, start-up checks).
- `main`: `create_app()`, assembly only (lifespan, middleware, routers, error handlers).
- `settings`: the NAMEGEN_* settings and the HTTP contract's hard limits.
- `api/`: what the API says: routes, request/response schemas, errors, OpenAPI, the pages for people.
- `serving/`: where model work runs: the loaded models, worker threads and processes, micro-batching,
  CPU count.
- `http/`: HTTP plumbing under every route: the bounded server, middleware, metrics, logs.
"""
