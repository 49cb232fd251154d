"""namegen's HTTP shell: FastAPI routes over model.engine.language_model.LanguageModel."""
