"""Coding of the VQ index grid into a stream payload; method 0 (fixed-length packing) lives in `packing`."""
