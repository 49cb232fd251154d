"""Response examples for the OpenAPI document: real answers of the committed names-mlp checkpoint.

Requests: /sample {"n": 3, "seed": 42, "novel": true}; /next-char {"prefix": "emm"};
/loss {"word": "emma"} and {"words": ["emma", "xqzv"]}. tests/test_docs.py checks they still match.
"""

from __future__ import annotations

from typing import Any

SAMPLE_EXAMPLE: dict[str, Any] = {
    "model": "names-mlp",
    "names": [
        {"name": "dmytt", "loss": 2.446533459118483, "novel": True, "truncated": False},
        {"name": "mochson", "loss": 2.5108677852685894, "novel": True, "truncated": False},
        {"name": "brychannie", "loss": 1.8151531568787576, "novel": True, "truncated": False},
    ],
    "complete": True,
    "reason": None,
}

NEXT_CHAR_EXAMPLE: dict[str, Any] = {
    "prefix": "emm",
    "distribution": [
        {"char": "a", "prob": 0.5470651805562755},
        {"char": "e", "prob": 0.1909520415541058},
        {"char": "i", "prob": 0.1022502998716787},
        {"char": "y", "prob": 0.0657431573401575},
        {"char": "o", "prob": 0.04117377562799178},
        {"char": ".", "prob": 0.027513678290851887},
        {"char": "r", "prob": 0.017989270781861934},
        {"char": "u", "prob": 0.003827583997453874},
        {"char": "l", "prob": 0.001141810591309842},
        {"char": "d", "prob": 0.0008758051797844253},
        {"char": "j", "prob": 0.0003323557444755617},
        {"char": "v", "prob": 0.0002810809269837904},
        {"char": "n", "prob": 0.00024676701454745623},
        {"char": "t", "prob": 0.00013917484860591993},
        {"char": "k", "prob": 9.602385429884077e-05},
        {"char": "m", "prob": 9.192084853557086e-05},
        {"char": "h", "prob": 7.229331171193835e-05},
        {"char": "z", "prob": 7.005144585021762e-05},
        {"char": "p", "prob": 5.1261226200125196e-05},
        {"char": "w", "prob": 3.5065121709523696e-05},
        {"char": "b", "prob": 2.0018671522463487e-05},
        {"char": "s", "prob": 1.3854663609399194e-05},
        {"char": "c", "prob": 1.236057584012052e-05},
        {"char": "f", "prob": 2.531601997986738e-06},
        {"char": "g", "prob": 1.91617656417538e-06},
        {"char": "x", "prob": 4.888307182979122e-07},
        {"char": "q", "prob": 2.3134535754203196e-07},
    ],
}

WORD_LOSS_EXAMPLE: dict[str, Any] = {
    "word": "emma",
    "loss": 1.7161602541101986,
    "perplexity": 5.563126409580005,
    "chars": [
        {"char": "e", "prob": 0.05078396510202996, "nll": 2.9801746218227247},
        {"char": "m", "prob": 0.19573933223867232, "nll": 1.6309714424612527},
        {"char": "m", "prob": 0.25081432492636796, "nll": 1.3830423549231896},
        {"char": "a", "prob": 0.5470651805562755, "nll": 0.6031873235928354},
        {"char": ".", "prob": 0.13759708645155602, "nll": 1.9834255277509913},
    ],
}

BATCH_LOSS_EXAMPLE: dict[str, Any] = {
    "results": [
        WORD_LOSS_EXAMPLE,
        {
            "word": "xqzv",
            "loss": 7.8398804983031996,
            "perplexity": 2539.901293176138,
            "chars": [
                {"char": "x", "prob": 0.004250622913050275, "nll": 5.4606897390092834},
                {"char": "q", "prob": 2.4317178656552962e-05, "nll": 10.624327516783683},
                {"char": "z", "prob": 0.0015707300396152275, "nll": 6.456214774312348},
                {"char": "v", "prob": 1.1762073346267987e-05, "nll": 11.350630326078925},
                {"char": ".", "prob": 0.004954098152509514, "nll": 5.307540135331766},
            ],
        },
    ],
    "mean_loss": 4.778020376206699,
    "perplexity": 118.86880146529025,
    "predictions": 10,
}

MODEL_EXAMPLE: dict[str, Any] = {
    "name": "names-mlp",
    "family": "mlp",
    "config": {"vocab_size": 27, "block_size": 3, "n_embd": 10, "n_hidden": 300, "init": "scaled"},
    "parameters": 17697,
    "context": 3,
    "alphabet": ".abcdefghijklmnopqrstuvwxyz",
    "metrics": {
        "train_loss": 1.9931333877738036,
        "val_loss": 2.098884713379579,
        "test_loss": 2.1119790434566617,
        "steps": 200000,
        "wall_seconds": 303.51,
        "steps_per_second": 659.0,
        "device": "cpu",
    },
    "data": {
        "source": "../shared/data/names.txt",
        "sha256": "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        "word_count": 29494,
        "split_seed": 42,
        "split_fractions": [0.8, 0.1, 0.1],
        "split_sizes": {"train": 23595, "val": 2949, "test": 2950},
    },
    "train_command": (
        "python -m model.train --data ../shared/data/names.txt --out weights/names-mlp.safetensors"
    ),
    "default": True,
}

SERVED_MODEL_EXAMPLE: dict[str, Any] = {**MODEL_EXAMPLE, "device": "cpu"}
MODEL_LIST_EXAMPLE: dict[str, Any] = {"default": "names-mlp", "models": [MODEL_EXAMPLE]}
