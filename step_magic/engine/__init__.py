"""Running one call: the stream on a worker thread, coalesced updates to a view on the main
thread, Ctrl-C, the tool loop, and the session that remembers calls between cells.
"""
