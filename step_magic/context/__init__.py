"""Kernel objects into the prompt: ``{name}`` references, ``--with`` attachments (frames,
images, video, earlier outputs) summarised within a budget.
"""
