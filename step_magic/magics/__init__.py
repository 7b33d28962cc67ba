"""IPython glue only: the ``%%step`` family of magics parse flags, read the namespace and
call the plain modules below; nothing else in step_magic knows the shell.
"""
