"""The speed benchmark: HTTP against a bare endpoint, in-process sampling, training, memory."""
