"""The facade the service uses: a checkpoint on a device, answering sample / distribution / loss.

Each call is text -> ids -> next-character log-probabilities (a `NextCharSource`) -> numbers;
nothing here knows HTTP, and nothing here asks which family or which source it holds.

A conditional model (its checkpoint's `conditions`, e.g. {"gender": ("female", "male")}) has one
source per condition id: 0 answers without a condition, 1.. with each value (guided by the
unconditioned steps, `sources.GuidedSteps`). A call's `condition` ({"gender": "female"}, or None)
picks the source; everything after is the same code. `classify` is Bayes over the per-value
likelihoods with the training prior the checkpoint records.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from model.checkpoint import Checkpoint, CorruptCheckpointError, load_checkpoint
from model.device import resolve_device
from model.engine import cancel, knobs
from model.engine.constraints.language import Language, compile_language
from model.engine.constraints.planner import ConstrainedSampler, ConstraintReport
from model.engine.constraints.spec import Constraints
from model.engine.filters import NameFilter
from model.engine.invariance import smallest_minimum
from model.engine.params import Loc, ParameterError, SamplingParams
from model.engine.sampler import StreamKeys, leaves_one_name, sample_rows
from model.engine.shaping import Shaping
from model.engine.sources import ForwardSource, build_guided_source, build_source
from model.families import build_model, count_parameters
from model.hashing import contains, contains_one, word_hash, word_hashes
from model.vocab import BOUNDARY, UnknownCharactersError

DEFAULT_PARAMS = SamplingParams()

Condition = Mapping[str, str] | None  # e.g. {"gender": "female"}; None or {} = no condition


@dataclass(frozen=True)
class WordScore:
    """How the model scores one word: each prediction (its characters, then the end token)."""

    word: str
    targets: str  # the predicted characters: the word followed by '.'
    probs: list[float]
    nlls: list[float]

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood in nats per prediction."""
        return sum(self.nlls) / len(self.nlls)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


class NextChar(NamedTuple):
    prefix: str  # as the model read it (normalised)
    probs: np.ndarray  # float64[vocab]: alphabet order, '.' = end


@dataclass(frozen=True)
class Sample:
    """One sampled name: its loss (the model's mean NLL of it, end included), its percentile
    (`LanguageModel.percentiles`), whether it is absent from the word list the model was trained
    on, and whether `max_length` cut it."""

    name: str
    loss: float
    percentile: float | None
    novel: bool
    truncated: bool


@dataclass(frozen=True)
class SampleResult:
    names: list[Sample]
    complete: bool  # False when fewer names than asked were found; `reason` says why
    reason: str | None = None
    constraint: ConstraintReport | None = None  # how constrained names were drawn


class Drawing:
    """An answer drawn chunk by chunk: iterate it for lists of names; once it is exhausted,
    `complete` and `reason` say whether all the names asked for were found."""

    def __init__(self, chunks: Iterator[list[Sample] | SampleResult]) -> None:
        self._chunks = chunks
        self.complete = True
        self.reason: str | None = None

    @classmethod
    def of(cls, result: SampleResult, chunk: int = knobs.SAMPLE_CHUNK) -> Drawing:
        """An answer already drawn, as chunks."""
        parts = [result.names[i : i + chunk] for i in range(0, len(result.names), chunk)]
        return cls(iter([*parts, SampleResult([], result.complete, result.reason)]))

    def __iter__(self) -> Iterator[list[Sample]]:
        for item in self._chunks:
            if isinstance(item, SampleResult):
                self.complete, self.reason = item.complete, item.reason
            else:
                yield item


class LanguageModel:
    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device,
        name: str = "model",
        max_table_entries: int = knobs.MAX_TABLE_ENTRIES,
    ) -> None:
        self.checkpoint = checkpoint
        self.vocab = checkpoint.vocab
        self.kind = checkpoint.kind
        self.device = device
        self.name = name
        # Tables and torch steps in float64 (MPS has none: float32 there), so a row's numbers hardly
        # depend on its batch; NumPy steps (the GRU) in float32 for speed. Either way a request to
        # a forward-pass model is computed by itself, so the same request gives the same bytes.
        dtype = torch.float32 if device.type == "mps" else torch.float64
        trained = build_model(checkpoint, device)
        self.parameter_count = count_parameters(trained)  # as trained (serving may fold some away)
        self.network = trained.for_inference().to(dtype)
        self.context_limit = self.network.context_limit
        self.conditions = {key: tuple(values) for key, values in trained.conditions.items()}
        values = next(iter(self.conditions.values()), ())
        # no condition: the model as it is; each value: guided by the model without a condition
        self.guidance = float(getattr(self.network.config, "condition_guidance", 0.0))
        self.sources = [build_source(self.network.conditioned(0), device, max_table_entries)] + [
            build_guided_source(
                self.network.conditioned(c), self.network.conditioned(0), self.guidance, device
            )
            for c in range(1, 1 + len(values))
        ]
        self.source = self.sources[0]  # no condition
        self._charges: dict[tuple[int, int, int], float] = {}  # _steps_seconds
        self.prior = self._read_prior(values)
        self._known_hashes = np.unique(checkpoint.known_word_hashes.numpy())  # sorted for lookups
        self._reference = np.asarray(checkpoint.reference.get("losses", []), dtype=np.float64)
        # one constrained sampler (its own caches) per condition id
        self.constrained_by = [ConstrainedSampler(source, self.vocab.alphabet) for source in self.sources]
        self.constrained = self.constrained_by[0]
        self._languages: dict[tuple[Constraints, str, int], Language] = {}
        self._languages_lock = threading.Lock()
        # "exact": concurrent plain requests may share a sampling pass and still get their own
        # bytes (a table always; a forward pass once `check_batching` has measured it); else "off".
        self.batching = "exact" if self.source.rows_independent else "off"
        self.min_rows: int | None = None  # the padding the self-test chose (None: none passed)

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto", **kwargs: Any) -> LanguageModel:
        path = Path(path)
        return cls(load_checkpoint(path), resolve_device(device), name=path.stem, **kwargs)

    def _read_prior(self, values: tuple[str, ...]) -> dict[str, float]:
        """p(value) of the training labels, as the checkpoint records it ({} when unconditional)."""
        if not values:
            return {}
        prior = self.checkpoint.data.get("labels", {}).get("prior")
        if (
            not isinstance(prior, dict)
            or list(prior) != list(values)
            or not all(isinstance(p, float) and 0 < p < 1 for p in prior.values())
            or abs(sum(prior.values()) - 1) > 1e-6
        ):
            raise CorruptCheckpointError(
                f"checkpoint {self.checkpoint.path} is inconsistent: a conditional model needs "
                f"data.labels.prior, a probability for each of {', '.join(values)}"
            )
        return dict(prior)

    def condition_id(self, condition: Condition) -> int:
        """The source index of `condition`: 0 for none, else 1 + the value's index; a
        ParameterError at "condition" naming the key or value otherwise, with the allowed ones."""
        if not condition:
            return 0
        if not self.conditions:
            raise ParameterError("condition", f"model {self.name!r} takes no condition")
        if len(condition) != 1:
            raise ParameterError(
                "condition", f"give one condition; allowed keys: {', '.join(self.conditions)}"
            )
        ((key, value),) = condition.items()
        if key not in self.conditions:
            raise ParameterError(
                ("condition", key), f"unknown condition {key!r}; allowed: {', '.join(self.conditions)}"
            )
        values = self.conditions[key]
        if value not in values:
            raise ParameterError(("condition", key), f"unknown {key} {value!r}; allowed: {', '.join(values)}")
        return 1 + values.index(value)

    def check_batching(self) -> str:
        """The start-up self-test (`model.engine.invariance`) for a forward-pass model: pads every
        source to the smallest row minimum under which a row's step is the same bits in every batch
        size up to the chunk size, and sets `batching` to "exact", or to "off" when none passes.
        A table is "exact" without a test."""
        forward = [source for source in self.sources if isinstance(source, ForwardSource)]
        if forward:
            self.pad_to(smallest_minimum(forward))
        return self.batching

    def pad_to(self, min_rows: int | None) -> None:
        """Pad every forward source's steps to `min_rows` rows, the minimum a self-test chose (a
        model process adopts its server's), batching "exact"; None: none passed, so the sources pad
        to `knobs.PAD_MIN_ROWS` and batching is "off"."""
        for source in self.sources:
            if isinstance(source, ForwardSource):
                source.min_rows = knobs.PAD_MIN_ROWS if min_rows is None else min_rows
                source.batch_invariant = min_rows is not None
        self.min_rows = min_rows
        self.batching = "exact" if min_rows is not None else "off"

    def plain_sample_seconds(self, n: int, params: SamplingParams) -> float:
        """An upper bound on the cost bound's charge for `n` plain names (every row running to
        `max_length`, and the prefix's score): a request under its budget by this bound never meets
        it, alone or in a shared pass, so sharing cannot change its answer."""
        prefix = len(params.prefix)
        per_name = self._steps_seconds(0, prefix + 2, params.max_length + 3)
        return n * per_name + self._steps_seconds(0, 1, prefix + 2)

    def _steps_seconds(self, source: int, first: int, stop: int) -> float:
        """The charge of one row's steps reading positions `first` to `stop` - 1 of source
        `source` (`NextCharSource.step_seconds`): every request asks again, so each range is
        summed once (a few hundred ranges at most: positions stop at the longest name allowed)."""
        key = (source, first, stop)
        if key not in self._charges:
            step = self.sources[source].step_seconds
            self._charges[key] = sum(step(t) for t in range(first, stop))
        return self._charges[key]

    @property
    def rows_independent(self) -> bool:
        """Whether requests may share one sampling pass and still get exactly their own names."""
        return self.source.rows_independent

    def is_quick(self, names: int = 0, words: int = 0) -> bool:
        """Whether drawing `names` names or scoring `words` words takes at most a millisecond or
        so (the budgets in `knobs`, measured): such work may run on the event loop."""
        if self.source.rows_independent:
            return names <= knobs.INLINE_MAX_NAMES and words <= knobs.INLINE_MAX_WORDS
        if self.source.cheap_steps:
            return names <= knobs.INLINE_MAX_NUMPY_NAMES and words <= knobs.INLINE_MAX_NUMPY_WORDS
        return False

    def scoring_seconds(self, words: list[str], condition: Condition = None) -> float:
        """About how long one worker takes to score `words` (each character and the end token) under
        `condition`: the estimate the cost bound charges while scoring, computed before any work."""
        source = self.condition_id(condition)
        return sum(self._steps_seconds(source, 1, len(word) + 2) for word in words)

    def normalise(self, text: str) -> str:
        return self.vocab.normalise(text)

    def encode(self, text: str, loc: str | Loc) -> list[int]:
        """Ids of normalised `text`, or a ParameterError at `loc` naming every bad character."""
        try:
            return self.vocab.encode(self.normalise(text))
        except UnknownCharactersError as exc:
            raise ParameterError(loc, str(exc)) from None

    def next_char(self, prefix: str = "", condition: Condition = None) -> NextChar:
        """The normalised prefix, and the probability (alphabet order, '.' = end) of each character
        after it; a bad prefix is a ParameterError at "prefix"."""
        source = self.sources[self.condition_id(condition)]
        ids = self.encode(prefix, "prefix")
        probs = np.exp(source.log_probs(source.start(ids))[0])
        return NextChar(self.vocab.decode(ids), probs)

    def uncached_prefixes(self, prefixes: list[str], condition: Condition = None) -> int:
        """How many of `prefixes` `next_chars` would read through the network (the others' start
        states are cached; a table reads none): the work it costs, for `is_quick`."""
        source = self.sources[self.condition_id(condition)]
        if not isinstance(source, ForwardSource):
            return 0
        return sum(not source.has_start(self.encode(prefix, "prefix")) for prefix in prefixes)

    def next_chars(self, prefixes: list[str], condition: Condition = None) -> list[NextChar]:
        """`next_char` of each prefix. A forward pass reads the distinct prefixes it has no start
        state for in one scoring pass (the same bits as alone once its batching is "exact"); a lone
        one through `start`, which caches it for the next request. Each prefix must have been
        checked (`encode`)."""
        source = self.sources[self.condition_id(condition)]
        if not isinstance(source, ForwardSource):
            return [self.next_char(prefix, condition) for prefix in prefixes]
        ids = [tuple(self.encode(prefix, "prefix")) for prefix in prefixes]
        fresh = list(dict.fromkeys(key for key in ids if not source.has_start(list(key))))
        if len(fresh) > 1:
            read = dict(zip(fresh, source.prefix_log_probs([list(key) for key in fresh]), strict=True))
        else:
            read = {}
        return [
            NextChar(
                self.vocab.decode(list(key)),
                np.exp(read[key] if key in read else source.log_probs(source.start(list(key)))[0]),
            )
            for key in ids
        ]

    def word_losses(self, words: list[str], condition: Condition = None, first: int = 0) -> list[WordScore]:
        """Score each word: every character and the end token, each predicted from all previous
        characters within the model's context. Bad words are one ParameterError naming each by its
        index in `words`, counted from `first` (where `words` is part of a request's list)."""
        source = self.sources[self.condition_id(condition)]
        ids = self.encode_words(words, first)
        scores = []
        for word_ids, lps in zip(ids, source.score(ids), strict=True):
            lps = lps.tolist()
            word = self.vocab.decode(word_ids)
            scores.append(WordScore(word, word + BOUNDARY, [math.exp(lp) for lp in lps], [-lp for lp in lps]))
        return scores

    def classify(self, words: list[str]) -> list[dict[str, Any]]:
        """For each word, {"word": the word as read, key: {value: p(value | word)}} for the model's
        condition key: Bayes over the per-value likelihoods p(word | value) (every character and the
        end) with the training prior, i.e. p(value | word) = prior(value) p(word | value) / sum over
        values of the same."""
        if not self.conditions:
            raise ParameterError("model", f"model {self.name!r} is not conditional: it cannot classify")
        ids = self.encode_words(words)
        ((key, values),) = self.conditions.items()
        log_joint = np.stack(
            [
                math.log(self.prior[value]) + np.array([lps.sum() for lps in self.sources[1 + i].score(ids)])
                for i, value in enumerate(values)
            ],
            axis=1,
        )
        log_joint -= log_joint.max(axis=1, keepdims=True)
        posterior = np.exp(log_joint)
        posterior /= posterior.sum(axis=1, keepdims=True)
        return [
            {"word": self.vocab.decode(word), key: dict(zip(values, row, strict=True))}
            for word, row in zip(ids, posterior.tolist(), strict=True)
        ]

    def condition_of(self, condition_id: int) -> Condition:
        """The condition whose source index is `condition_id` (the inverse of `condition_id`)."""
        if not condition_id:
            return None
        ((key, values),) = self.conditions.items()
        return {key: values[condition_id - 1]}

    def encode_words(self, words: list[str], first: int = 0) -> list[list[int]]:
        """Each word's ids, or one ParameterError naming every bad word by its index (counted from
        `first`)."""
        ids, problems = [], []
        for i, word in enumerate(words, start=first):
            try:
                ids.append(self.encode(word, (i,)))
            except ParameterError as exc:
                problems += exc.problems
                continue
            if not ids[-1]:
                problems.append(((i,), "cannot score an empty word"))
        if problems:
            raise ParameterError.of(problems)
        return ids

    def most_names_drawn(self, n: int, *, novel: bool, max_rounds: int = knobs.NOVEL_MAX_ROUNDS) -> int:
        """The most names `sample(n, ..., novel=novel, max_rounds=max_rounds)` draws: its cost
        (`novel` here: whether names are resampled, i.e. novel or `params.filters_names`)."""
        return _draw_size(n) * max_rounds if novel else n

    def sample(
        self,
        n: int = 1,
        params: SamplingParams = DEFAULT_PARAMS,
        seed: int | None = None,
        *,
        novel: bool = False,
        max_rounds: int = knobs.NOVEL_MAX_ROUNDS,
        constraints: Constraints | None = None,
        budget: int | None = None,
        method: str | None = None,
        condition: Condition = None,
    ) -> SampleResult:
        """Sample `n` names. With `novel`, only distinct names absent from the word list; with
        `params.distinct`, `exclude` or `min_distance`, only names that pass those
        (`model.engine.filters`): the names left out are resampled (seeds derived from `seed`)
        for at most `max_rounds` rounds. The names `drawing(...)` yields, chunk by chunk.
        With `constraints`, only names satisfying them, drawn from the shaped model's conditional
        (see `model.engine.constraints`) within `budget` draws (by default `constraint_budget`);
        `method` forces "exact", "smc" or "rejection" (tests and benchmarks). `condition` picks the
        conditional model's distribution (None: no condition)."""
        condition_id = self.condition_id(condition)
        if constraints is not None and not constraints.empty:
            if n < 1:
                raise ParameterError("n", f"n must be >= 1, got {n}")
            budget = self.constraint_budget if budget is None else budget
            return self._sample_constrained(
                n, params, seed, constraints, novel, max_rounds, budget, method, condition_id
            )
        drawing = self.drawing(n, params, seed, novel=novel, max_rounds=max_rounds, condition=condition)
        names = [sample for chunk in drawing for sample in chunk]
        return SampleResult(names, drawing.complete, drawing.reason)

    def drawing(
        self,
        n: int,
        params: SamplingParams = DEFAULT_PARAMS,
        seed: int | None = None,
        *,
        novel: bool = False,
        max_rounds: int = knobs.NOVEL_MAX_ROUNDS,
        chunk: int = knobs.SAMPLE_CHUNK,
        condition: Condition = None,
    ) -> Drawing:
        """`sample`'s answer as an iterator of lists of names, drawn `chunk` rows at a time (an
        export of 100,000 names holds one chunk at a time); `complete` and `reason` are set once
        it is exhausted. Bad params raise here, before anything is drawn."""
        if n < 1:
            raise ParameterError("n", f"n must be >= 1, got {n}")
        params = params.checked(self.vocab)
        cid = self.condition_id(condition)
        if novel or params.filters_names:
            wanted = NameFilter.of(params, novel, self._known_hashes, self.vocab.alphabet)
            seed = seed if seed is not None else secrets.randbits(63)
            return Drawing(self._filtered_chunks(n, params, seed, wanted, max_rounds, chunk, cid))
        seed = seed if seed is not None else secrets.randbits(64)
        chunks = (
            self.sample_rows_of(seed, start, min(chunk, n - start), params, cid)
            for start in range(0, n, chunk)
        )
        return Drawing(chunks)

    def _filtered_chunks(
        self,
        n: int,
        params: SamplingParams,
        seed: int,
        wanted: NameFilter,
        max_rounds: int,
        chunk: int,
        condition_id: int = 0,
    ) -> Iterator[list[Sample] | SampleResult]:
        """Rounds of drawing (each `_draw_size` rows, `chunk` at a time) until `n` names pass
        `wanted`; the last item is the SampleResult saying whether all were found."""
        found = 0
        seen: set[str] = set()
        prefix = self.vocab.encode(params.prefix)
        steps = params.max_length - len(prefix)
        one_name = leaves_one_name(self.sources[condition_id], prefix, steps, Shaping.of(params))
        rounds = 1 if one_name else max_rounds  # every round would draw the same name again
        for round_ in range(rounds):
            size, round_seed = _draw_size(n - found), _round_seed(seed, round_)
            for start in range(0, size, chunk):
                try:
                    batch = self.sample_rows_of(
                        round_seed, start, min(chunk, size - start), params, condition_id
                    )
                except cancel.OverBudget as exc:  # NAMEGEN_MAX_WORK_SECONDS spent
                    if round_ == 0 and start == 0:
                        raise
                    reason = (
                        f"found {found} {wanted.describe()} of {n} in {round_ + 1} rounds of sampling, "
                        f"all that {exc.budget:g} s of model work allowed; fewer names, a higher "
                        "temperature or a shorter max_length finds them sooner"
                    )
                    yield SampleResult([], complete=False, reason=reason)
                    return
                kept = []
                for sample, keep in zip(batch, wanted.keeps([s.name for s in batch]), strict=True):
                    if keep and found < n and not (wanted.distinct and sample.name in seen):
                        kept.append(sample)
                        seen.add(sample.name)
                        found += 1
                yield kept
                if found == n:
                    yield SampleResult([], complete=True)
                    return
        if one_name:
            reason = one_name_reason(params, f"found {found} {wanted.describe()} of {n}", satisfied=True)
        else:
            reason = (
                f"found {found} {wanted.describe()} of {n} in {max_rounds} rounds of sampling; "
                "a higher temperature, a shorter prefix or a longer max_length finds more"
            )
        yield SampleResult([], complete=False, reason=reason)

    @property
    def constraint_budget(self) -> int:
        """Names and particles a constrained request may draw (fewer for a model stepped in torch)."""
        return knobs.CONSTRAINED_MAX_DRAWS if self.source.cheap_steps else knobs.CONSTRAINED_MAX_DRAWS_TORCH

    def language(self, params: SamplingParams, constraints: Constraints) -> Language:
        """The compiled language of checked `params` and `constraints` (a ParameterError at
        ("constraints", ...) when they are malformed or admit no name), memoised."""
        params = params.checked(self.vocab)
        constraints = constraints.checked(self.vocab, params.max_length)
        key = (constraints, params.prefix, params.max_length)
        with self._languages_lock:
            found = self._languages.get(key)
        if found is None:
            found = compile_language(constraints, self.vocab, params.prefix, params.max_length)
            with self._languages_lock:
                if len(self._languages) >= knobs.LANGUAGE_CACHE_ENTRIES:
                    self._languages.pop(next(iter(self._languages)))
                self._languages[key] = found
        return found

    def _sample_constrained(
        self,
        n: int,
        params: SamplingParams,
        seed: int | None,
        constraints: Constraints,
        novel: bool,
        max_rounds: int,
        budget: int,
        method: str | None,
        condition_id: int = 0,
    ) -> SampleResult:
        if method is not None and method not in ("exact", "smc", "rejection"):
            raise ParameterError("method", f"method must be exact, smc or rejection, got {method!r}")
        params = params.checked(self.vocab)
        language = self.language(params, constraints)
        key = (constraints.checked(self.vocab, params.max_length), params.prefix, params.max_length)
        shaping = Shaping.of(params)
        seed = seed if seed is not None else secrets.randbits(63)
        prefix_ids = self.vocab.encode(params.prefix)
        prefix_sum = (
            float(self.sources[condition_id].score([prefix_ids])[0][:-1].sum()) if prefix_ids else 0.0
        )
        # novel, distinct, exclude and min_distance: the same NameFilter and rounds as unconstrained
        filtering = novel or params.filters_names
        keep = NameFilter.of(params, novel, self._known_hashes, self.vocab.alphabet) if filtering else None
        found: list[Sample] = []
        seen: set[str] = set()
        kept: list[Sample] = []
        reports: list[ConstraintReport] = []
        left = budget
        for round_ in range(max_rounds if filtering else 1):
            missing = n - (len(found) if filtering else 0)
            wanted = _draw_size(missing) if filtering else n
            drawn = self.constrained_by[condition_id].draw(
                key, language, shaping, wanted, _round_seed(seed, round_), left, method
            )
            reports.append(drawn.report)
            left -= drawn.report.draws
            names = [params.prefix + text for text, _ in drawn.names]
            known = self.are_known_names(names) if names else []
            losses = [
                -(prefix_sum + lp) / (len(name) + 1) for name, (_, lp) in zip(names, drawn.names, strict=True)
            ]
            samples = [
                Sample(name, loss, pct, not is_known, False)
                for name, loss, pct, is_known in zip(
                    names, losses, self.percentiles(losses), known, strict=True
                )
            ]
            if keep is None:
                kept = samples
                break
            for sample, ok in zip(samples, keep.keeps(names), strict=True):
                if ok and len(found) < n and not (keep.distinct and sample.name in seen):
                    found.append(sample)
                    seen.add(sample.name)
            if len(found) == n or left <= 0 or drawn.report.one_name:  # (a round more: the same name)
                break
        result = found if keep is not None else kept
        report = _combined(reports)
        if len(result) == n:
            return SampleResult(result, complete=True, constraint=report)
        what = keep.describe() if keep is not None else "names"
        if report.one_name:
            reason = one_name_reason(params, f"found {len(result)} {what} of {n}", report.p_constraint > 0.0)
        elif report.p_constraint == 0.0 and report.method == "exact":
            reason = (
                f"found {len(result)} {what} of {n}: under this temperature, top_k and top_p no name "
                "satisfies the constraints (p_constraint is 0); a larger top_k or top_p finds some"
            )
        else:
            reason = (
                f"found {len(result)} {what} of {n} within the budget ({report.draws} draws by "
                f"{report.method}, p_constraint about {report.p_constraint:.3g}); wider constraints, a "
                "higher temperature or fewer names find more"
            )
        return SampleResult(result, complete=False, reason=reason, constraint=report)

    def conditional_next_char(
        self,
        params: SamplingParams,
        constraints: Constraints,
        seed: int | None = None,
        condition: Condition = None,
    ) -> tuple[np.ndarray, ConstraintReport]:
        """p(next character | prefix, the name satisfies `constraints`) under the shaped model, in
        alphabet order ('.' = end): exact for a table model, else estimated by SMC (the weighted
        share of first characters among `knobs.NEXT_CHAR_PARTICLES` particles, seeded)."""
        params = params.checked(self.vocab)
        language = self.language(params, constraints)
        key = (constraints.checked(self.vocab, params.max_length), params.prefix, params.max_length)
        shaping = Shaping.of(params)
        sampler = self.constrained_by[self.condition_id(condition)]
        return sampler.next_char(key, language, shaping, seed if seed is not None else 0)

    def sample_rows_of(
        self, seed: int, start: int, count: int, params: SamplingParams, condition_id: int = 0
    ) -> list[Sample]:
        """Rows start..start+count-1 of the stream `seed`: row r is the same name whichever rows
        are drawn with it (to the last bit for a table or a forward pass whose batching is
        "exact"; one whose self-test failed may differ in the last digits of a loss with its
        batch, so an answer is always drawn in the same chunks)."""
        keys = StreamKeys(
            np.full(count, seed, dtype=np.uint64), np.arange(start, start + count, dtype=np.uint64)
        )
        return self._draw(keys, params, condition_id)

    def sample_batch(
        self, requests: list[tuple[int, int | None]], params: SamplingParams, condition: Condition = None
    ) -> list[list[Sample]]:
        """Names for several (n, seed) requests with the same params and condition, in one pass:
        each request gets exactly the names it gets alone when the source's rows are independent."""
        seeded = [(n, seed if seed is not None else secrets.randbits(64)) for n, seed in requests]
        samples = self._draw(StreamKeys.of_requests(seeded), params, self.condition_id(condition))
        bounds = np.cumsum([0] + [n for n, _ in seeded]).tolist()
        return [samples[a:b] for a, b in pairwise(bounds)]

    def _draw(self, keys: StreamKeys, params: SamplingParams, condition_id: int = 0) -> list[Sample]:
        """One name per stream key (from the source of `condition_id`), scored and checked for novelty."""
        source = self.sources[condition_id]
        params = params.checked(self.vocab)
        prefix = self.vocab.encode(params.prefix)
        shaping = Shaping.of(params)
        steps = params.max_length - len(prefix)
        texts, sums, truncated = sample_rows(source, self.vocab.alphabet, keys, prefix, steps, shaping)
        prefix_sum = float(source.score([prefix])[0][:-1].sum()) if prefix else 0.0
        names = [params.prefix + text for text in texts]
        known = self.are_known_names(names)
        losses = [-(prefix_sum + lp) / (len(name) + 1) for name, lp in zip(names, sums, strict=True)]
        return [
            Sample(name, loss, pct, not is_known, cut)
            for name, loss, pct, cut, is_known in zip(
                names, losses, self.percentiles(losses), truncated, known, strict=True
            )
        ]

    def percentiles(self, losses: list[float]) -> list[float | None]:
        """For each loss, the share (in %, one decimal) of the checkpoint's held-out names the model
        finds less likely (a higher loss; a tie counts half): "more name-like than 87 % of real
        names". None for every loss when the checkpoint stores no reference (`model.reference`)."""
        if not len(self._reference):
            return [None] * len(losses)
        values = np.asarray(losses, dtype=np.float64)
        below = np.searchsorted(self._reference, values, side="left")
        at_most = np.searchsorted(self._reference, values, side="right")
        share = 100.0 * (len(self._reference) - (below + at_most) / 2) / len(self._reference)
        return np.round(share, 1).tolist()

    def is_known_word(self, word: str) -> bool:
        """Whether `word` is in the word list this checkpoint was trained from (any split)."""
        return self.are_known_names([self.normalise(word)])[0]

    def are_known_names(self, names: list[str]) -> list[bool]:
        """`is_known_word` for names as the model writes them (already normalised), in bulk."""
        if len(names) < knobs.ARRAY_HASHING_MIN_NAMES:
            return [contains_one(self._known_hashes, word_hash(name)) for name in names]
        return contains(self._known_hashes, word_hashes(names)).tolist()

    def describe(self) -> dict[str, Any]:
        """What this model is, for people: family, size, context, alphabet, metrics, provenance."""
        return {
            "name": self.name,
            "family": self.kind,
            "config": self.checkpoint.config,
            "parameters": self.parameter_count,
            "context": self.context_limit,
            "alphabet": self.vocab.alphabet,
            "conditions": {k: list(v) for k, v in self.conditions.items()} or None,
            "batching": self.batching,
            "metrics": self.checkpoint.metrics,
            "data": self.checkpoint.data,
            "train_command": self.checkpoint.train_args.get("command"),
        }


def _draw_size(missing: int) -> int:
    """Names drawn in one round of novel sampling while `missing` are still to be found."""
    return max(2 * missing, 16)


def _round_seed(seed: int, round_: int) -> int:
    """Round 0 uses the request's seed; later rounds a seed derived from it, so runs repeat."""
    if round_ == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}:{round_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def one_name_reason(params: SamplingParams, found: str, satisfied: bool) -> str:
    """The reason of an answer short of names under a shaping that leaves one name
    (`leaves_one_name`), after `found` ("found 1 names of 3"): that name was drawn once, or it does
    not satisfy the constraints (not `satisfied`); and what would find more."""
    if params.temperature == 0:
        only, draws = "the greedy name (temperature 0)", "temperature 0 (greedy) draws"
        wider = "a temperature above 0"
    else:
        only = "the one name this temperature, top_k and top_p leave"
        draws = "this temperature, top_k and top_p draw"
        wider = "a larger top_k or top_p or a higher temperature"
    if satisfied:
        return f"{found}: {draws} one name only; {wider} finds more"
    return f"{found}: {only} does not satisfy the constraints; {wider} finds some"


def _combined(reports: list[ConstraintReport]) -> ConstraintReport:
    """One report for several rounds: the first round's method and estimate (a later round's
    method only when SMC ran there), all draws."""
    first = reports[0]
    smc = [r for r in reports if r.method == "smc"]
    chosen = smc[0] if smc and first.method != "smc" else first
    draws = sum(r.draws for r in reports)
    return ConstraintReport(
        chosen.method, chosen.p_constraint, draws, chosen.ess, chosen.particles, chosen.one_name
    )
