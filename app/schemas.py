"""Request and response bodies: limits, descriptions and an OpenAPI example for every request."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.limits import MAX_LENGTH, MAX_N, MAX_TEMPERATURE, MAX_WORDS
from app.schema_examples import (
    BATCH_LOSS_EXAMPLE,
    MODEL_EXAMPLE,
    MODEL_LIST_EXAMPLE,
    NEXT_CHAR_EXAMPLE,
    SAMPLE_EXAMPLE,
    SERVED_MODEL_EXAMPLE,
    WORD_LOSS_EXAMPLE,
)

Prefix = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_LENGTH),
    Field(description="Text the name starts with; stripped, lowercased for a lowercase alphabet."),
]
Word = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LENGTH),
    Field(description="A name to score; stripped, lowercased for a lowercase alphabet."),
]


ModelName = Annotated[
    str | None,
    Field(description="Which loaded model answers (GET /models lists them); the default model when absent."),
]


class StrictBody(BaseModel):
    """Strict: unknown fields, strings for numbers and floats for ints are all 422s."""

    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


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
                }
            ]
        }
    )

    model: ModelName = None
    n: int = Field(10, ge=1, le=MAX_N, description="How many names.")
    temperature: float = Field(
        1.0,
        gt=0,
        le=MAX_TEMPERATURE,
        allow_inf_nan=False,
        description="Divides the logits: < 1 is bolder toward likely names, > 1 wilder.",
    )
    top_k: int | None = Field(
        None, ge=1, description="Draw only from the k likeliest characters (1..vocabulary size)."
    )
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Draw only from the smallest set of likeliest characters whose probability reaches p.",
    )
    prefix: Prefix = ""
    max_length: int = Field(
        32, ge=1, le=MAX_LENGTH, description="Most characters in a name, prefix included; longer are cut."
    )
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Same seed and request give the same names."
    )
    novel: bool = Field(False, description="Only distinct names that are not in the model's word list.")

    @model_validator(mode="after")
    def _prefix_fits(self) -> SampleRequest:
        if len(self.prefix) > self.max_length:
            raise ValueError(
                f"prefix has {len(self.prefix)} characters, more than max_length ({self.max_length})"
            )
        return self


class SampledName(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_EXAMPLE["names"][0]]})

    name: str
    loss: float = Field(description="The model's mean NLL of the name, end token included (nats).")
    novel: bool = Field(description="True when the name is not in the model's word list.")
    truncated: bool = Field(description="True when max_length cut the name before the model ended it.")


class SampleResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SAMPLE_EXAMPLE]})

    model: str
    names: list[SampledName]
    complete: bool = Field(
        description="False only when novel names were asked for and fewer than n were found."
    )
    reason: str | None = Field(None, description="Why fewer than n names came back (when complete is false).")


class NextCharRequest(StrictBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"prefix": "emm"}]})

    model: ModelName = None
    prefix: Prefix = ""


class CharProb(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [NEXT_CHAR_EXAMPLE["distribution"][0]]})

    char: str = Field(description="A vocabulary entry; '.' is the end of the name.")
    prob: float


class NextCharResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [NEXT_CHAR_EXAMPLE]})

    prefix: str
    distribution: list[CharProb] = Field(description="Every vocabulary entry, likeliest first.")


class LossRequest(StrictBody):
    """Each character and the end token are predicted from all previous characters within the
    model's context: a window model sees the last block_size characters, padded with '.'."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"word": "emma"}, {"words": ["emma", "olivia", "xqzv"]}]}
    )

    model: ModelName = None
    word: Word | None = None
    words: list[Word] | None = Field(None, min_length=1, max_length=MAX_WORDS)

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("word" in data) == ("words" in data):
            raise ValueError("give exactly one of 'word' (a name) or 'words' (a list of names)")
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
    family: str = Field(description="bigram, mlp, wavenet, gru or transformer")
    config: dict[str, Any] = Field(description="The family's configuration, as stored in the checkpoint.")
    parameters: int
    context: int | None = Field(
        description="The most previous characters a prediction reads: block_size for a window model, "
        "the context limit of a transformer, null for a recurrent model (all of them)."
    )
    alphabet: str
    metrics: dict[str, Any]
    data: dict[str, Any]
    train_command: str | None = Field(description="The command that trained this checkpoint.")
    default: bool = Field(description="True for the model that answers requests naming none.")


class ServedModelInfo(ModelInfo):
    model_config = ConfigDict(json_schema_extra={"examples": [SERVED_MODEL_EXAMPLE]})

    device: str


class ModelList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MODEL_LIST_EXAMPLE]})

    default: str
    models: list[ModelInfo]


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str
