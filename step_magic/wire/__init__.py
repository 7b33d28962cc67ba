"""Talking to a server: Chat Completions and Messages API streams, SSE, think tags, tool-call
collection and the retry policy, turned into ``core.events``; the UI never sees JSON or SSE.
"""
