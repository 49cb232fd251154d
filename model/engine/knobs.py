"""Every speed knob of the engine and the service in one place, each with the measurement behind it.

Change one only with `make bench` (bench/run.py) before and after; the tests pin every fast path
to the simple definition, so a knob changes speed, never answers.
"""

# Exact tables: a window family whose vocab**(window + 1) log-probabilities fit this budget gets
# every context's distribution computed once at load (4M float64 = 32 MiB per table). The block-3
# MLP (27**4 = 531k entries) and the bigram fit; the block-8 WaveNet (27**9) does not.
MAX_TABLE_ENTRIES = 1 << 22
TABLE_BUILD_CHUNK = 4096  # contexts per forward pass while building a table: bounds the peak memory

# Up to this many names a plain Python loop over a table's rows beats array operations, whose
# per-call overhead is paid at every step (measured: equal at 64 names, 708 vs 536 us at 128,
# 180 vs 515 us at 16).
PYTHON_SAMPLING_MAX_N = 64

# Steps of random draws the vectorised sampler hashes for every row up front (a row's later draws
# are hashed when it gets there): names of up to 15 letters, nearly all. The draws do not depend on it.
DRAW_HORIZON = 16

# Fewer names than this are hashed one by one in Python ints for the novelty check: about 3 us a
# name against about 21-30 us for setting up the arrays.
ARRAY_HASHING_MIN_NAMES = 8

# Work the service runs inline on the event loop for a model with a shared-row (table) source;
# more, or any forward-pass model, goes to a worker thread. A worker doing Python work fights the
# loop for the GIL: at concurrency 16, /sample n=100 served 565 req/s with batches over 256 names
# sent to a worker, 940 with this 2,048 budget (one run; bare endpoint 2,532 and 2,668).
INLINE_MAX_NAMES = 2048  # sampled names, 1-3 us each from a table
INLINE_MAX_WORDS = 100  # scored words, about 10 us each from a table
# A forward-pass model stepped in NumPy (the GRU) draws or scores this much inline: a pass of 16
# one-name requests costs about 1.3 ms, less than a hop to a worker and back, which also leaves the
# loop parsing while the worker fights it for the GIL. Measured at c=16 (3 rounds each, wrk against
# the bare endpoint): at 2 the GRU's passes went to a worker and held 8 requests on average; at 16
# they run inline and hold 16, and one-word /loss rose from 0.49x to 0.62x of bare (/sample n=1
# 0.47x to 0.49x). More, or any model stepped through torch (the transformer: milliseconds per
# name), goes to a worker. With model processes on pipes (a round trip about 30 us of the loop's
# CPU), sending these passes to a process instead was slower again on 2 cores (A/B, 6 rounds:
# n=1 0.93x and 0.90x, one-word /loss 0.98x and 0.77x), so they stay inline. Pipelined (one
# process, a c=16 batch cut into two passes of 8, so the loop answers one while the process draws
# the other): n=1 1.11x and 1.06x (4 and 6 rounds), with two processes 0.90x and 1.02x: within the
# noise on 2 cores, so not taken (README, Speed, issue 19's eleventh round).
INLINE_MAX_NUMPY_NAMES = 16
INLINE_MAX_NUMPY_WORDS = 16
# Model processes (app.serving.processes) a server starts by default: one per worker thread, at
# most this many. Each adds about 140 MB (PSS, its share of the forkserver's included), and one
# event loop feeds only a few: more cores are better spent on more replicas.
MAX_DEFAULT_PROCESSES = 4

# The cost bound (NAMEGEN_MAX_WORK_SECONDS, `model.engine.cancel`): seconds one row's step takes,
# measured with one thread on the 2-core development machine. Scoring 1,000 words of 64 and of 15
# letters (200 for the transformer): tables 0.35-0.60 us a character; the WaveNet in float64 torch
# 14.6-14.8 us (77k parameters); the transformer in float32 torch 21.7 us a step within its context
# (205k), 124 us a step past it (16 positions). Sampling in passes of 512 rows costs more per row
# (tests/system/test_worst_case.py: 1,000 novel WaveNet names with top_k 1 took 4.0 s at a 2 s
# estimate from scoring's figure, the transformer's 2.6 s), so the torch figures are sampling's.
# The NumPy GRU (256k parameters; oneDNN's dense layer, the prefix table, the sampler's pool) was
# measured against what the bound charged it: scoring 1,000 words of 64 and of 15 letters took
# 0.18-0.20 of the charge at 6.1e-11, sampling 10,000 names 0.15, 1,000 novel names with top_k 1
# 0.15, 1,000 names of up to 50 letters at temperature 3 0.17-0.19, 500 "-son" names by SMC
# 0.30-0.35 (medians of 3, the default and the gender model). So 3.2e-11: the worst of these
# times 1.5 for a busy machine, about 8 us a step. Per parameter and position, the largest of
# each kind: the estimate bounds the time from above.
TABLE_SECONDS_PER_CHAR = 0.6e-6
NUMPY_SECONDS_PER_PARAMETER = 3.2e-11
TORCH64_SECONDS_PER_PARAMETER = 3.8e-10
TORCH32_SECONDS_PER_PARAMETER = 1.4e-10

# Batch-invariant forward steps (issue 19). A BLAS call's bits for one row may depend on how many
# rows share the call: measured bit for bit at 36 sizes from 1 to 4,096, the NumPy GRU step on
# torch's `mm` differed only at 1 row (a matrix-vector kernel; on oneDNN's linear, which it uses
# now, at none: `model.families.dense`), torch float64 steps between <= 3 and >= 4 rows, and NumPy
# float64 matmuls with a 27-wide output around 129-512 rows. So a forward source pads every step to
# at least a minimum of rows and every pass (sampling, scoring) holds at most FORWARD_CHUNK_ROWS
# rows: each row then sees batch sizes in one invariant range, alone or among other requests'.
# The start-up self-test (`model.engine.invariance`) picks the smallest minimum among these that
# passes on this machine; PAD_MIN_ROWS is what a source pads to before (and if none passes).
PAD_MIN_ROWS_CANDIDATES = (1, 2, 4, 8, 16)
PAD_MIN_ROWS = 4
# Rows a forward-pass model samples or scores at once: the batch-invariant range's top, and a bound
# on its state (the transformer's key/value cache: 33 KB a row at its 16-character context; 2,000
# rows at once peaked at +210 MB). Chunks of 256 rows also stay in cache (10,000 GRU names were
# 1.4-1.7x faster than in 512-row passes, identical bytes).
FORWARD_CHUNK_ROWS = 256
# A forward-pass model's batch of /sample requests is cut into as many passes as may start (two per
# model process), each of at least this many names: a pass of 400 names draws 1.47x as many names a
# second as one of 100 and 512 1.5x, while the pool drains at the end of each (in process, one
# thread). Served, /sample n=100 at c=16 (1,600 names pending, so 4 passes of 400 at 256): 1.05x
# and 1.09x in two A/B runs of 6-8 alternating rounds (single rounds 0.95-1.08x); neutral at c=4
# and c=64 in the first.
SPLIT_PASS_MIN_NAMES = 512
# /loss requests of at most this many words to a forward-pass model whose batching is "exact" are
# scored together with the concurrent others (one word at c=16: one pass instead of 16).
LOSS_BATCH_MAX_WORDS = 16

# Bytes of first forward steps (the state after '.' + prefix) a forward-pass model keeps: every
# name of every request with that prefix starts there (one step of about seven saved). A bound by
# bytes, not prefixes: 4,096 transformer prefixes held +135 MB for good (up to 33 KB each).
START_CACHE_BYTES = 8 * 1024 * 1024
# The prefix table of a forward-pass model with batch-invariant NumPy steps (the GRU,
# `model.engine.prefix_table`): the state after '.' + every prefix of 0, 1, 2 ids (1 + 27 + 729
# states: 3.3 MB for the 1-layer GRU), then the likeliest three-letter prefixes in what is left,
# each row with its plain CDF (1,052 prefixes at 8 MiB: 83 % of the names that reach three
# letters), so most names' first three draws and every word's first three steps are lookups.
# Against the whole levels alone (paired rounds in one process, medians of 7, two runs): a pass
# of 16 one-name requests 1.11-1.12x faster, 100 names 1.13-1.14x, 10,000 names 1.17-1.21x; 12
# and 16 MiB (93 and 97 %) added at most 5 % more, and the server's RSS grows by about 5 MB a GRU source.
PREFIX_TABLE_BYTES = 8 * 1024 * 1024

# Rounds of resampling a `novel` request gets at most (each draws about twice the names still
# missing): the engine's default and the service's NAMEGEN_NOVEL_MAX_ROUNDS default.
NOVEL_MAX_ROUNDS = 10

# Constrained sampling (model.engine.constraints). A request's budget, in drawn names and SMC
# particles together: past it the answer is what was found, with complete: false (the GRU draws
# about 18k names/s on one thread, so the worst case is a few seconds).
CONSTRAINED_MAX_DRAWS = 100_000
# The same for a model stepped through torch (the transformer: 1,000 names in about 1.3 s, 6,400
# in 16 s, so about 10-20 s at worst).
CONSTRAINED_MAX_DRAWS_TORCH = 8_192
# Particles per batched SMC pass (a torch model's step grows faster than linearly past ~1,000 rows).
SMC_CHUNK_ROWS = 1024
# SMC: particles per returned name, and names per group (a group of 32 * 32 = 1,024 particles
# yields 32 names). One name from 32 particles showed a selection bias a 3,000-draw chi-square
# sees (GRU, p = 0.18 %: p-value 1e-21); a 1,024-particle group costs the same per name and
# passes. Rejection is used while p_constraint * 32 >= 1 (it then costs fewer draws).
SMC_PARTICLES_PER_NAME = 32
SMC_NAMES_PER_GROUP = 32
# The first rejection round draws at least this many candidates (to estimate p_constraint).
REJECTION_PILOT = 256
# Particles of the one SMC group that estimates a conditional next-character distribution.
NEXT_CHAR_PARTICLES = 4096
# ... or fewer on a slow model, sized to the request's work budget, but never fewer than this.
NEXT_CHAR_MIN_PARTICLES = 256
# A table model's backward pass is exact when its arrays (positions x contexts x automaton states,
# float64) fit this; past it the model is served by rejection/SMC like any other.
EXACT_MAX_BYTES = 64 << 20
# Backward passes (exact ones and SMC twists) kept by the process for all its models together, least
# recently used dropped first: with the transient pass of EXACT_MAX_BYTES, the most constrained
# sampling adds to a replica's memory (the pod's limit is sized from the worst requests).
CONSTRAINT_CACHE_BYTES = 64 << 20
# Compiled constraint languages kept per model (each a few KiB), oldest dropped first.
LANGUAGE_CACHE_ENTRIES = 1024

# Rows drawn in one pass when an answer is drawn in chunks (every /sample answer: a CSV or NDJSON
# export of up to 100,000 names holds one chunk at a time). Equal to the JSON answer's most names,
# so a plain JSON answer is one pass, and an export's first rows are the JSON answer's names.
SAMPLE_CHUNK = 1000
