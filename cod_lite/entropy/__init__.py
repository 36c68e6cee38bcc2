"""Coding of the VQ index grid into a stream payload.

`packing`: method 0, the reference's fixed-length packing. `prior`: the integer index prior
(static marginal and four-pass context model). `coding`: method ids, range coding with
constriction, and the choice of the smallest payload.
"""
