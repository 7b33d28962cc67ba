"""What outlives a call: conversation threads, the SQLite history, and recorded replies
(cassettes) that can be replayed offline.
"""
