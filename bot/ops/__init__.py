"""Running the bot for real: metrics and the health server, structured logs, usage reports, members' privacy.

Each module is independent of Discord; the composition root wires them in (see the README's Operations section).
"""
