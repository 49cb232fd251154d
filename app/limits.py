"""The HTTP contract's hard limits (DESIGN.md); settings may lower them, never raise them."""

MAX_N = 1000
MAX_WORDS = 1000
MAX_LENGTH = 64
MAX_TEMPERATURE = 5.0
