"""The encoder and everything it owns (encoder, prompt, model, pooling, packing, batching, cache, weights_fingerprint, meta).

Importing it checks nothing and loads nothing: dependency floors are checked when a command starts
(`evalkit.versions.require_for`).
"""
