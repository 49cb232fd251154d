"""The HTTP contract's hard limits (the README's "The API"); settings may lower them, never raise them."""

MAX_N = 1000
MAX_WORDS = 1000
MAX_LENGTH = 64
MAX_TEMPERATURE = 5.0
MAX_VOCAB = 27  # top_k at most: the vocabulary of every committed model (a-z and the end token)
