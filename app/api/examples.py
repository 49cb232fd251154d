"""Response examples for the OpenAPI document: real answers of the committed checkpoints.

Requests (to names-mlp): /sample {"n": 3, "seed": 42, "novel": true}; /next-char {"prefix": "emm"};
/loss {"word": "emma"} and {"words": ["emma", "xqzv"]}; /model and /models describe the default
(names-gru); /classify {"model": "names-gru-gender", "words": ["emma", "john", "riley"]}.
tests/app/test_docs.py checks they still match; after retraining a checkpoint, rewrite them from the
served answers.
"""

from __future__ import annotations

from typing import Any

SAMPLE_EXAMPLE: dict[str, Any] = {
    "model": "names-mlp",
    "names": [
        {"name": "dmytt", "loss": 2.4465294302762293, "percentile": 23.3, "novel": True, "truncated": False},
        {
            "name": "mochristoniylery",
            "loss": 2.1427303574586656,
            "percentile": 41.8,
            "novel": True,
            "truncated": False,
        },
        {
            "name": "brychannie",
            "loss": 1.8151551037667326,
            "percentile": 71.9,
            "novel": True,
            "truncated": False,
        },
    ],
    "complete": True,
    "reason": None,
}

# /sample {"n": 3, "seed": 42, "constraints": {"ends_with": "lyn", "length": [5, 8]}} to names-mlp
CONSTRAINED_SAMPLE_EXAMPLE: dict[str, Any] = {
    "model": "names-mlp",
    "names": [
        {"name": "dilyn", "loss": 1.7505837148704615, "percentile": 77.6, "novel": False, "truncated": False},
        {
            "name": "modelyn",
            "loss": 1.8522287823620682,
            "percentile": 68.4,
            "novel": True,
            "truncated": False,
        },
        {
            "name": "brylyn",
            "loss": 1.5563050693595806,
            "percentile": 92.1,
            "novel": False,
            "truncated": False,
        },
    ],
    "complete": True,
    "reason": None,
    "constraint": {"method": "exact", "p_constraint": 0.008464654485534372, "draws": 3},
}

NEXT_CHAR_EXAMPLE: dict[str, Any] = {
    "prefix": "emm",
    "distribution": [
        {"char": "a", "prob": 0.5470628792537671},
        {"char": "e", "prob": 0.190952566831609},
        {"char": "i", "prob": 0.10225243305281637},
        {"char": "y", "prob": 0.06574458671867478},
        {"char": "o", "prob": 0.04117359455275929},
        {"char": ".", "prob": 0.02751303880687244},
        {"char": "r", "prob": 0.01798865279365489},
        {"char": "u", "prob": 0.003827430241656461},
        {"char": "l", "prob": 0.0011417979595486948},
        {"char": "d", "prob": 0.0008757192484110918},
        {"char": "j", "prob": 0.00033231545948316047},
        {"char": "v", "prob": 0.00028107133318149366},
        {"char": "n", "prob": 0.00024675103558486494},
        {"char": "t", "prob": 0.00013914817692245338},
        {"char": "k", "prob": 9.602164066062722e-05},
        {"char": "m", "prob": 9.192144255745615e-05},
        {"char": "h", "prob": 7.229626107322882e-05},
        {"char": "z", "prob": 7.005222256240001e-05},
        {"char": "p", "prob": 5.126088605606473e-05},
        {"char": "w", "prob": 3.505960205845826e-05},
        {"char": "b", "prob": 2.001818039504022e-05},
        {"char": "s", "prob": 1.3855076431036046e-05},
        {"char": "c", "prob": 1.2361900227955896e-05},
        {"char": "f", "prob": 2.531408595550553e-06},
        {"char": "g", "prob": 1.9157542783248734e-06},
        {"char": "x", "prob": 4.888053325109539e-07},
        {"char": "q", "prob": 2.3135482932588453e-07},
    ],
}

WORD_LOSS_EXAMPLE: dict[str, Any] = {
    "word": "emma",
    "loss": 1.7161617679895271,
    "percentile": 80.4,
    "perplexity": 5.563134831488454,
    "chars": [
        {"char": "e", "prob": 0.05078393078744024, "nll": 2.980175297520285},
        {"char": "m", "prob": 0.1957396820590698, "nll": 1.6309696552880726},
        {"char": "m", "prob": 0.25081386625558477, "nll": 1.3830441836512843},
        {"char": "a", "prob": 0.5470628792537671, "nll": 0.6031915302348053},
        {"char": ".", "prob": 0.13759672243864285, "nll": 1.9834281732531895},
    ],
}

BATCH_LOSS_EXAMPLE: dict[str, Any] = {
    "results": [
        WORD_LOSS_EXAMPLE,
        {
            "word": "xqzv",
            "loss": 7.83986988962508,
            "percentile": 0.0,
            "perplexity": 2539.874348323787,
            "chars": [
                {"char": "x", "prob": 0.004250618362412313, "nll": 5.460690809591288},
                {"char": "q", "prob": 2.4317661491859923e-05, "nll": 10.624307661251908},
                {"char": "z", "prob": 0.0015707287989765576, "nll": 6.4562155641610985},
                {"char": "v", "prob": 1.1761855160430876e-05, "nll": 11.35064887619797},
                {"char": ".", "prob": 0.0049543636914029, "nll": 5.307486536923126},
            ],
        },
    ],
    "mean_loss": 4.778015828807304,
    "perplexity": 118.86826092260333,
    "predictions": 10,
}

MODEL_EXAMPLE: dict[str, Any] = {
    "name": "names-gru",
    "family": "gru",
    "config": {"vocab_size": 27, "n_embd": 64, "n_hidden": 256, "n_layer": 1, "dropout": 0.3},
    "parameters": 255963,
    "context": None,
    "alphabet": ".abcdefghijklmnopqrstuvwxyz",
    "conditions": None,
    "batching": "off",
    "metrics": {
        "train_loss": 1.8039408680422122,
        "val_loss": 1.9511016267163965,
        "test_loss": 1.9594015024720854,
        "steps": 6000,
        "best_step": 5750,
        "wall_seconds": 307.74,
        "steps_per_second": 19.5,
        "device": "cpu",
        "threads": 1,
    },
    "data": {
        "source": "names.txt",
        "sha256": "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        "word_count": 29494,
        "split_seed": 42,
        "split_fractions": [0.8, 0.1, 0.1],
        "split_sizes": {"train": 23595, "val": 2949, "test": 2950},
    },
    "train_command": "python -m model.train --family gru --data ../shared/data/names.txt --out "
    "weights/names-gru.safetensors",
    "default": True,
}

SERVED_MODEL_EXAMPLE: dict[str, Any] = {**MODEL_EXAMPLE, "device": "cpu"}
MODEL_LIST_EXAMPLE: dict[str, Any] = {"default": "names-gru", "models": [MODEL_EXAMPLE]}

CLASSIFY_REQUEST_EXAMPLE: dict[str, Any] = {"model": "names-gru-gender", "words": ["emma", "john", "riley"]}
CLASSIFY_EXAMPLE: dict[str, Any] = {
    "model": "names-gru-gender",
    "prior": {"gender": {"female": 0.5701005390885432, "male": 0.4298994610058126}},
    "results": [
        {"word": "emma", "gender": {"female": 0.996171631054483, "male": 0.003828368945516987}},
        {"word": "john", "gender": {"female": 0.0073983087418206354, "male": 0.9926016912581793}},
        {"word": "riley", "gender": {"female": 0.9475996148814992, "male": 0.052400385118500634}},
    ],
}
