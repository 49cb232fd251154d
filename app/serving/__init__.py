"""Where model work runs (no FastAPI here).

- `service`: the models loaded at start-up, the default, and the one call per request.
- `workers`: where each job runs (inline, a model process, or the bounded pool of model threads;
  503 + Retry-After past the queue).
- `processes`: the model processes that run forward passes off the GIL, checked to give the
  server's bytes.
- `batching`: concurrent /sample (and short /loss) requests to a model whose batching is "exact"
  share one pass.
- `cpus`: the CPUs this process may use (affinity and cgroup quota).
"""
