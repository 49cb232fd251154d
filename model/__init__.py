"""namegen's model side: data, vocabulary, the MLP, training, checkpoints and inference.

Nothing here imports from `app`: the HTTP service is a thin shell around `model.inference`.
"""
