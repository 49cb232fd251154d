"""Request and response bodies: limits, descriptions and an OpenAPI example for every request."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from app.api.examples import (
    BATCH_LOSS_EXAMPLE,
    CLASSIFY_EXAMPLE,
    CLASSIFY_REQUEST_EXAMPLE,
    CONSTRAINED_SAMPLE_EXAMPLE,
    MODEL_EXAMPLE,
    MODEL_LIST_EXAMPLE,
    NEXT_CHAR_EXAMPLE,
    SAMPLE_EXAMPLE,
    SERVED_MODEL_EXAMPLE,
    WORD_LOSS_EXAMPLE,
)
from app.settings import MAX_EXPORT_N, MAX_LENGTH, MAX_N, MAX_TEMPERATURE, MAX_VOCAB, MAX_WORDS
from model.engine.constraints.spec import MAX_ITEMS, MAX_REGEX, MAX_STRING, Constraints
from model.engine.params import MAX_MIN_DISTANCE, SAMPLING_FIELDS, SamplingParams
from model.families import family_kinds

# Names are made of the model's alphabet (every committed model: a-z, input lowercased), with
# surrounding spaces, tabs and newlines stripped. The model checks exactly that
# (`model.vocab.Vocab.normalise`) before it reads the text, so the `pattern` the OpenAPI document
# gives (`app.api.openapi`) is what is enforced.
TEXT_RULE = (
    "Letters of the model's alphabet (GET /models lists it; a-z for every committed model, uppercase "
    "lowercased), optionally surrounded by spaces, tabs or newlines, which are stripped. Any other "
    "character is a 422 naming it."
)


def _no_lone_surrogates(text: str | None) -> str | None:
    """A lone UTF-16 surrogate (JSON "\\ud800") is not a character: refuse it before it reaches a model."""
    if text is None:
        return text
    bad = [f"U+{ord(c):04X}" for c in text if 0xD800 <= ord(c) <= 0xDFFF]
    if bad:
        raise ValueError(
            f"contains a lone UTF-16 surrogate ({', '.join(dict.fromkeys(bad))}): not valid text"
        )
    return text


ValidText = AfterValidator(_no_lone_surrogates)
# Marks the OpenAPI document (`app.api.openapi`) replaces with what the loaded models accept: the
# text rule as a `pattern` ("any": may be empty; "letters": at least one letter), the names as an enum.
TEXT_MARK, MODEL_MARK = "x-namegen-text", "x-namegen-model"
Prefix = Annotated[
    str,
    Field(max_length=MAX_LENGTH),
    ValidText,
    Field(description="Text the name starts with. " + TEXT_RULE, json_schema_extra={TEXT_MARK: "any"}),
]
Word = Annotated[
    str,
    Field(min_length=1, max_length=MAX_LENGTH),
    ValidText,
    Field(
        description="A name to score (at least one letter). " + TEXT_RULE,
        json_schema_extra={TEXT_MARK: "letters"},
    ),
]


ModelName = Annotated[
    str | None,
    ValidText,
    Field(
        description="Which loaded model answers (GET /models lists them); the default model when absent.",
        json_schema_extra={MODEL_MARK: True},
    ),
]

ConditionText = Annotated[str, Field(max_length=MAX_LENGTH), ValidText]
Condition = Annotated[
    dict[ConditionText, ConditionText] | None,
    Field(
        description='A label the name should have, such as {"gender": "female"}, for a conditional model '
        "(GET /models lists each model's `conditions`: null for a model that takes none). Absent or null: "
        "no condition. An unknown key or value is a 422 listing the allowed ones; a condition sent to a "
        "model that takes none is a 422 naming the models that do.",
        max_length=4,
        examples=[{"gender": "female"}],
    ),
]

STRICT_INTEGER = 'A JSON integer: 1 or 1.0 (JSON Schema counts both as integers), not 1.5, "1" or true.'


def _integral(value: Any) -> Any:
    """1.0 is an integer to JSON Schema (and to a generated client): take it as 1. 1.5, "1" and true
    still fail the strict int check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(ge: int, le: int) -> Any:
    """An int in [ge, le] that also takes 1.0 as 1 (the bounds go on the int, so the schema says
    minimum/maximum)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_integral)]


# Words people reach for, and the field that does it (offered only where the body has that field).
SYNONYMS = {
    "suffix": "constraints", "ends_with": "constraints", "endswith": "constraints",
    "contains": "constraints", "excludes": "constraints", "length": "constraints",
    "min_length": "constraints", "regex": "constraints", "pattern": "constraints",
    "gender": "condition", "sex": "condition",
    "count": "n", "num": "n", "number": "n", "num_names": "n", "size": "n",
    "temp": "temperature", "k": "top_k", "p": "top_p", "nucleus": "top_p",
    "start": "prefix", "starts_with": "prefix", "startswith": "prefix", "begins_with": "prefix",
    "maxlen": "max_length", "max_len": "max_length", "random_seed": "seed",
    "name": "word", "names": "words", "text": "word",
}  # fmt: skip


def did_you_mean(name: str, fields: Iterable[str]) -> str:
    """What to say about an unknown body field `name`, given the body's `fields`."""
    fields = list(fields)
    target = SYNONYMS.get(name.lower())
    if target in fields:
        return f"'{name}' is not a field; see '{target}'"
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    if close:
        return f"'{name}' is not a field; did you mean '{close[0]}'?"
    return f"'{name}' is not a field; the fields are: {', '.join(fields)}"


class StrictBody(BaseModel):
    """Strict: unknown fields, strings for numbers and fractions for ints are all 422s."""

    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


Fragment = Annotated[str, Field(min_length=1, max_length=MAX_STRING), ValidText]


class ConstraintsBody(StrictBody):
    """What every returned name must satisfy, besides starting with `prefix`. Names are drawn from
    the model's own distribution conditioned on all of them (see `constraint` in the response)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"ends_with": "lyn", "length": [5, 8]},
                {"contains": ["ar"], "excludes": ["y"], "regex": "[a-m].*"},
            ]
        }
    )

    ends_with: Fragment | None = Field(None, description="Letters the name ends with. " + TEXT_RULE)
    contains: list[Fragment] = Field(
        [], max_length=MAX_ITEMS, description="Strings that must each occur in the name."
    )
    excludes: list[Fragment] = Field(
        [], max_length=MAX_ITEMS, description="Strings that must not occur in the name."
    )
    length: list[integer(1, MAX_LENGTH)] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[min, max] letters, inclusive, prefix included; max at most max_length. "
        "A name of max letters ends there (the model's end token), it is never cut.",
    )
    regex: Annotated[str, Field(max_length=MAX_REGEX), ValidText] | None = Field(
        None,
        description="A regular expression the whole name must match, over the model's alphabet: "
        "literals, classes ([a-z], [^aeiou]), '.', ?, *, +, {m,n}, | and groups. Backreferences, "
        "look-arounds and flags are a 422.",
    )

    def engine(self) -> Constraints:
        return Constraints(
            ends_with=self.ends_with,
            contains=tuple(self.contains),
            excludes=tuple(self.excludes),
            length=(self.length[0], self.length[1]) if self.length is not None else None,
            regex=self.regex,
        )


CONSTRAINTS_DESCRIPTION = (
    "Only names satisfying every constraint, drawn from the model's distribution (shaped by "
    "temperature, top_k, top_p) conditioned on them. A combination no name satisfies is a 422 at "
    '["body", "constraints"] saying why; a rare one returns what a bounded budget found, with '
    "complete false and a reason."
)


class ConstraintInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CONSTRAINED_SAMPLE_EXAMPLE["constraint"]]})

    method: str = Field(
        description="exact: a table model's exact conditional (a backward pass over contexts and the "
        "constraints' automaton); rejection: unconstrained draws kept when they satisfy the "
        "constraints (exact); smc: sequential Monte Carlo (32 names from 1,024 weighted particles; "
        "close to the conditional, a small bias)."
    )
    p_constraint: float = Field(
        description="The probability that a name (given the prefix, under the shaped model) satisfies "
        "the constraints: exact when method is exact, else an unbiased estimate."
    )
    draws: int = Field(description="Names and particles drawn to answer (the budget bounds it).")
    ess: float | None = Field(
        None, description="SMC only: the mean effective sample size of a group's 1,024 final particles."
    )


def constraint_info(report: Any) -> dict[str, Any]:
    """The response's `constraint` object from the engine's ConstraintReport."""
    info = {"method": report.method, "p_constraint": report.p_constraint, "draws": report.draws}
    if report.ess is not None:
        info["ess"] = report.ess
    return info


class SampleRequest(StrictBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "n": 5,
                    "temperature": 1.0,
                    "top_k": None,
                    "prefix": "",
                    "max_length": 32,
                    "seed": 42,
                    "novel": True,
                },
                {"n": 3, "seed": 42, "constraints": {"ends_with": "lyn", "length": [5, 8]}},
            ]
        }
    )

    model: ModelName = None
    n: integer(1, MAX_EXPORT_N) = Field(
        10,
        description=f"How many names: at most {MAX_N} in a JSON answer, {MAX_EXPORT_N:,} streamed as CSV "
        "or NDJSON (the Accept header). " + STRICT_INTEGER,
        # the document's bound is the JSON answer's: a larger n is a 422 unless an export is asked for
        json_schema_extra={"maximum": MAX_N},
    )
    temperature: float = Field(
        1.0,
        ge=0,
        le=MAX_TEMPERATURE,
        allow_inf_nan=False,
        description="Divides the logits: < 1 is bolder toward likely names, > 1 wilder. 0 is greedy: the "
        "likeliest character at every step (the first in alphabet order on a tie), so every name of the "
        "answer is the same unless `distinct`, `exclude` or `min_distance` leave it out.",
    )
    top_k: integer(1, MAX_VOCAB) | None = Field(
        None,
        description="Draw only from the k likeliest characters: 1..the model's vocabulary size (27 for "
        "every committed model; a larger k is a 422). " + STRICT_INTEGER,
    )
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Draw only from the smallest set of likeliest characters whose probability reaches p.",
    )
    prefix: Prefix = ""
    max_length: integer(1, MAX_LENGTH) = Field(
        32,
        description="Most characters in a name, prefix included (at least the stripped prefix's length, "
        "else a 422); longer names are cut. " + STRICT_INTEGER,
    )
    seed: integer(0, 2**63 - 1) | None = Field(
        None, description="Same seed and request give the same names. " + STRICT_INTEGER
    )
    novel: bool = Field(False, description="Only distinct names that are not in the model's word list.")
    distinct: bool = Field(
        False,
        description="No name twice in the answer (names of the word list allowed). Repeats are "
        "resampled; when too few are found, `complete` is false and `reason` says why.",
    )
    exclude: list[Word] = Field(
        [],
        description="Names to leave out of the answer (e.g. ones already rejected), normalised as a "
        "prefix is; as many as the body limit allows.",
    )
    min_distance: integer(0, MAX_MIN_DISTANCE) = Field(
        0,
        description="Keep only names at least this many edits (insertions, deletions, substitutions) "
        "from every name of the model's word list and of `exclude`: 1 leaves those names out, 2 also "
        "every name one edit from them. " + STRICT_INTEGER,
    )
    constraints: ConstraintsBody | None = Field(None, description=CONSTRAINTS_DESCRIPTION)
    condition: Condition = None

    def params(self) -> SamplingParams:
        """The engine's sampling parameters of this body, field by field (every field of
        SamplingParams but the engine's own bookkeeping has the same name here)."""
        return SamplingParams(**{name: getattr(self, name) for name in SAMPLING_FIELDS})


PERCENTILE = Field(
    description="The share (%) of the model's held-out real names (its test split) that it finds "
    "less likely than this name, per character and end-normalised as `loss` is: 87.0 reads "
    '"more name-like than 87 % of real names". Null for a checkpoint that stores no reference.'
)


class SampledName(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_EXAMPLE["names"][0]]})

    name: str
    loss: float = Field(description="The model's mean NLL of the name, end token included (nats).")
    percentile: float | None = PERCENTILE
    novel: bool = Field(description="True when the name is not in the model's word list.")
    truncated: bool = Field(description="True when max_length cut the name before the model ended it.")


class SampleResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_EXAMPLE]})

    model: str
    names: list[SampledName]
    complete: bool = Field(
        description="False only when names were resampled (novel, distinct, exclude, min_distance) or "
        "constrained and fewer than n were found."
    )
    reason: str | None = Field(None, description="Why fewer than n names came back (when complete is false).")
    constraint: ConstraintInfo | None = Field(
        None, description="How constrained names were drawn (present only when constraints were given)."
    )


class NextCharRequest(StrictBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"prefix": "emm"},
                {"prefix": "ja", "constraints": {"ends_with": "n", "length": [4, 5]}},
            ]
        }
    )

    model: ModelName = None
    prefix: Prefix = ""
    constraints: ConstraintsBody | None = Field(
        None,
        description="The distribution of the next character given the prefix AND that the name "
        "satisfies these constraints (names of at most max_length letters): exact for a table model "
        "(bigram, MLP), else estimated from 4,096 weighted SMC particles (the share of their weight "
        "on each first character; `constraint.ess` says how many they are worth).",
    )
    max_length: integer(1, MAX_LENGTH) = Field(
        32, description="With constraints: the longest name. " + STRICT_INTEGER
    )
    seed: integer(0, 2**63 - 1) | None = Field(
        None,
        description="With constraints on a model without a table: the SMC estimate's seed (0 when absent).",
    )
    condition: Condition = None


class CharProb(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [NEXT_CHAR_EXAMPLE["distribution"][0]]})

    char: str = Field(description="A vocabulary entry; '.' is the end of the name.")
    prob: float


class NextCharResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [NEXT_CHAR_EXAMPLE]})

    prefix: str
    distribution: list[CharProb] = Field(description="Every vocabulary entry, likeliest first.")
    constraint: ConstraintInfo | None = Field(
        None, description="With constraints: how the conditional distribution was computed."
    )


def _one_of_word_or_words(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [{"required": ["word"]}, {"required": ["words"]}]
    schema["examples"] = [{"word": "emma"}, {"words": ["emma", "olivia", "xqzv"]}]
    for field in ("word", "words"):
        schema["properties"][field].pop("default", None)


class LossRequest(StrictBody):
    """Exactly one of `word` or `words`. Each character and the end token are predicted from all
    previous characters within the model's context: a window model sees the last block_size
    characters, padded with '.'."""

    model_config = ConfigDict(
        json_schema_extra=_one_of_word_or_words,
    )

    model: ModelName = None
    # Not nullable: absent is the only way to leave one out (`null` is a 422 naming the field).
    word: Word = None  # type: ignore[assignment]
    words: list[Word] = Field(None, min_length=1, max_length=MAX_WORDS)  # type: ignore[assignment]
    condition: Condition = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("word" in data) == ("words" in data):
            unknown = [did_you_mean(str(k), cls.model_fields) for k in data if k not in cls.model_fields]
            raise ValueError(
                "give exactly one of 'word' (a name) or 'words' (a list of names)"
                + "".join(f" ({hint})" for hint in unknown)
            )
        return data


class CharScore(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [WORD_LOSS_EXAMPLE["chars"][0]]})

    char: str = Field(description="The predicted character; '.' is the end of the name.")
    prob: float
    nll: float = Field(description="-ln(prob), in nats.")


class WordLoss(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [WORD_LOSS_EXAMPLE]})

    word: str
    loss: float = Field(description="Mean NLL over the characters and the end token (nats).")
    percentile: float | None = PERCENTILE
    perplexity: float = Field(description="e^loss")
    chars: list[CharScore]


class BatchLoss(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_LOSS_EXAMPLE]})

    results: list[WordLoss]
    mean_loss: float = Field(description="Mean NLL over every prediction of every word (nats).")
    perplexity: float = Field(description="e^mean_loss")
    predictions: int


class ModelInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MODEL_EXAMPLE]})

    name: str
    family: str = Field(description="The model family: " + ", ".join(family_kinds()) + ".")
    config: dict[str, Any] = Field(description="The family's configuration, as stored in the checkpoint.")
    parameters: int
    context: int | None = Field(
        None,
        description="The most previous characters a prediction reads: block_size for a window model, "
        "the context limit of a transformer, null for a recurrent model (all of them).",
    )
    alphabet: str
    metrics: dict[str, Any]
    data: dict[str, Any]
    conditions: dict[str, list[str]] | None = Field(
        None,
        description='The labels a conditional model takes, e.g. {"gender": ["female", "male"]} (send one as '
        '`"condition"` to /sample, /next-char, /loss; /classify answers with them); null for the others.',
    )
    batching: Literal["exact", "off"] = Field(
        description='"exact" when concurrent requests to this model share a sampling pass and still get '
        "exactly their own bytes (a table model, or a forward pass whose start-up self-test found its "
        'steps batch-invariant on this machine); "off" when each request is computed by itself.'
    )
    train_command: str | None = Field(description="The command that trained this checkpoint.")
    default: bool = Field(description="True for the model that answers requests naming none.")


class ServedModelInfo(ModelInfo):
    model_config = ConfigDict(json_schema_extra={"examples": [SERVED_MODEL_EXAMPLE]})

    device: str


class ModelList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MODEL_LIST_EXAMPLE]})

    default: str
    models: list[ModelInfo]


class ClassifyRequest(StrictBody):
    """Names to classify by a conditional model (GET /models lists each model's `conditions`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [CLASSIFY_REQUEST_EXAMPLE]})

    model: ModelName = None
    words: list[Word] = Field(min_length=1, max_length=MAX_WORDS)


class WordClass(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CLASSIFY_EXAMPLE["results"][0]]})

    word: str = Field(description="The word as the model read it (stripped, lowercased).")
    gender: dict[str, float] = Field(
        description="p(value | word) for each value, summing to 1: Bayes over the model's likelihood of the "
        "word given each value (every character and the end, as /loss with that condition scores it) "
        "with the training prior."
    )


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CLASSIFY_EXAMPLE]})

    model: str
    prior: dict[str, dict[str, float]] = Field(
        description="The training prior per condition key: each value's mean share over the labelled "
        "training names (soft labels from the SSA counts)."
    )
    results: list[WordClass]


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str
