"""Where model work runs (no FastAPI here).

- `service`: the models loaded at start-up, the default, and the one call per request.
- `workers`: the bounded pool of model threads (503 + Retry-After past the queue).
- `batching`: concurrent /sample (and short /loss) requests to a model whose batching is "exact"
  share one pass.
- `cpus`: the CPUs this process may use (affinity and cgroup quota).
"""
