"""namegen's model side: the core (vocab, data, checkpoint, hashing, device, recipe), the model
families, the inference engine and the training library.

Nothing here imports from `app`: the HTTP service is a thin shell around
`model.engine.language_model.LanguageModel` (the layers are checked by `lint-imports`).
"""

import os

# Bitwise reproducible MKL (torch's BLAS): its float32 GEMM gave a row different bits on another OS
# thread (5 rows, measured on the development machine), so a worker thread's answer could differ
# from the event loop's. "Strict" conditional numerical reproducibility removes that; MKL reads it
# at its first call, which comes after this import. `model.engine.invariance` checks it at start-up.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
