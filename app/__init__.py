"""namegen's HTTP shell: FastAPI routes over model.inference.LanguageModel."""
