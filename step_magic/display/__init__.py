"""Everything step-magic shows: the live notebook panel, the terminal stream, the static
form a saved notebook keeps, Markdown rendering, dry runs and ``--map`` progress.
"""
