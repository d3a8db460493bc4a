"""gemini-image-bot core: works on plain values, never imports discord (except app.py and __main__.py)."""
