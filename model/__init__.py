"""namegen's model side: the core (vocab, data, checkpoint, hashing, device, recipe), the model
families, the inference engine and the training library.

Nothing here imports from `app`: the HTTP service is a thin shell around
`model.engine.language_model.LanguageModel` (the layers are checked by `lint-imports`).
"""
