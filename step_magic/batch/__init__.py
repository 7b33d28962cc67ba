"""``--map``: one prompt over every row of a table, concurrent, rate-limited and resumable."""
