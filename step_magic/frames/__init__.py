"""pandas and polars behind one small surface: bounded summaries, tables and the backends
the read-only DataFrame tools use. Neither library is imported at module level.
"""
