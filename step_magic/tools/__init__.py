"""Functions and DataFrames as tools the model may call: schemas from signatures, argument
checking, and the read-only DataFrame tools.
"""
