"""The shared vocabulary: settings, models and prices, requests, events, results and errors.

Everything else imports from here and nothing here imports from the rest of step_magic, so
the client, the engine and the bundled server can agree on names without knowing each other.
"""
